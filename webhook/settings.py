"""Process settings: CLI flags and ``SAFETY_GATE_*`` environment variables (DESIGN §6)."""

from __future__ import annotations

import pathlib

import pydantic
import pydantic_settings

from webhook.policy.actors import DEFAULT_OBSERVED_GROUPS, DEFAULT_OBSERVED_USERS, ActorRules


class Settings(pydantic_settings.BaseSettings):
    model_config = pydantic_settings.SettingsConfigDict(env_prefix="SAFETY_GATE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = pydantic.Field(default=8443, ge=0, le=65535)
    metrics_port: int = pydantic.Field(default=0, ge=0, le=65535)  # 0: /metrics on the main port only
    tls_cert: pathlib.Path | None = None
    tls_key: pathlib.Path | None = None
    postgres_dsn: str | None = None
    redis_url: str | None = None
    data_dir: pathlib.Path = pathlib.Path(".safety-gate")
    policy: pathlib.Path | None = None
    kubeconfig: pathlib.Path | None = None
    in_cluster: bool = False
    cluster_id: str = "default"
    namespace: str = "safety-gate"     # the gate's own namespace: never gated
    pod_name: str | None = None
    log_level: str = "INFO"
    fail_closed: bool = False
    max_body_bytes: int = 3 * 1024 * 1024
    observed_users: list[str] = list(DEFAULT_OBSERVED_USERS)
    observed_groups: list[str] = list(DEFAULT_OBSERVED_GROUPS)
    bypass_subjects: list[str] = []
    api_token_file: pathlib.Path | None = None

    def actor_rules(self) -> ActorRules:
        return ActorRules(
            observed_users=tuple(self.observed_users),
            observed_groups=tuple(self.observed_groups),
            bypass_subjects=tuple(self.bypass_subjects),
        )

    @property
    def excluded_namespaces(self) -> frozenset[str]:
        return frozenset({"kube-system", self.namespace})
