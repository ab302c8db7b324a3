"""Process settings: CLI flags and ``SAFETY_GATE_*`` environment variables (DESIGN §6)."""

from __future__ import annotations

import datetime
import enum
import pathlib

import pydantic
import pydantic_settings

from webhook.policy.actors import DEFAULT_OBSERVED_GROUPS, DEFAULT_OBSERVED_USERS, ActorRules
from webhook.policy.durations import parse_duration


class LogFormat(str, enum.Enum):
    """``--log-format``: JSON lines for collectors, readable lines for people, or by the output."""

    AUTO = "auto"  # text on a terminal, JSON otherwise
    JSON = "json"
    TEXT = "text"


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
    log_format: LogFormat = LogFormat.AUTO
    fail_closed: bool = False
    max_body_bytes: int = 3 * 1024 * 1024
    # Reviews decided at once, per replica and per actor; beyond either, automation is answered 429
    # with Retry-After and people and observed actors are admitted and recorded (DESIGN §7),
    # instead of queueing behind them. 0: no limit.
    max_in_flight: int = pydantic.Field(default=64, ge=0)
    max_in_flight_per_actor: int = pydantic.Field(default=16, ge=0)
    observed_users: list[str] = list(DEFAULT_OBSERVED_USERS)
    observed_groups: list[str] = list(DEFAULT_OBSERVED_GROUPS)
    bypass_subjects: list[str] = []
    api_token_file: pathlib.Path | None = None
    # The Kubernetes edge (webhook.kube): only used with --kubeconfig or in a cluster.
    webhook_config: str | None = None          # our ValidatingWebhookConfiguration (`cleanup` deletes it)
    kube_timeout_seconds: float = pydantic.Field(default=5.0, gt=0)
    alert_queue_size: int = pydantic.Field(default=1000, ge=1)
    alert_sweep_seconds: float = pydantic.Field(default=60.0, gt=0)
    alert_stale_hours: float = pydantic.Field(default=24.0, gt=0)
    upkeep_interval: float = pydantic.Field(default=1.0, gt=0)  # seconds between store checks / outbox drains
    # Retention (DESIGN §7): seconds between runs inside the server (0: never; `safety-gate retention
    # run` still works), and the default max age for untargeted actions and whole-partition drops.
    retention_interval: float = pydantic.Field(default=3600.0, ge=0)
    retention_max_age_days: int = pydantic.Field(default=90, ge=1)
    # Seconds between refreshes of the effectiveness aggregates (ai_action_effectiveness_score), on
    # every replica; its own schedule, independent of retention's. 0: never.
    effectiveness_interval: float = pydantic.Field(default=300.0, ge=0)
    # kubectl-visible summaries (webhook.kube.summaries): ActionHistorySummary per target and
    # EffectivenessMetric per namespace + cluster, written by one leader, paced by a token bucket.
    summaries: bool = True
    summary_interval: float = pydantic.Field(default=10.0, gt=0)          # seconds between passes
    summary_writes_per_second: float = pydantic.Field(default=5.0, gt=0)  # sustained write rate
    summary_burst: int = pydantic.Field(default=10, ge=1)                  # writes allowed at once
    summary_settle_seconds: float = pydantic.Field(default=2.0, ge=0)     # changes younger than this wait
    summary_resync_seconds: float = pydantic.Field(default=3600.0, gt=0)  # relist, delete idle summaries
    # Self-managed certificates (webhook.kube.certificates, DESIGN §8): with cert_secret and a cluster,
    # the replicas keep a CA + serving pair in this Secret of `namespace` and the caBundle of
    # `webhook_config` in step. Durations as the chart writes them ("87600h", "30m", "2d").
    cert_secret: str | None = None
    service_name: str = "safety-gate"
    ca_validity: datetime.timedelta = datetime.timedelta(days=3650)
    cert_validity: datetime.timedelta = datetime.timedelta(days=365)
    cert_renew_before: datetime.timedelta = datetime.timedelta(days=30)
    cert_propagation: datetime.timedelta = datetime.timedelta(seconds=30)  # new CA trusted before it is served
    cert_overlap: datetime.timedelta = datetime.timedelta(hours=1)         # old CA kept in caBundle after rotation
    cert_check_interval: float = pydantic.Field(default=30.0, gt=0)       # seconds between checks of the Secret

    @pydantic.field_validator("ca_validity", "cert_validity", "cert_renew_before", "cert_propagation",
                              "cert_overlap", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    @pydantic.field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"unknown log level {value!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    def actor_rules(self) -> ActorRules:
        return ActorRules(
            observed_users=tuple(self.observed_users),
            observed_groups=tuple(self.observed_groups),
            bypass_subjects=tuple(self.bypass_subjects),
        )

    @property
    def excluded_namespaces(self) -> frozenset[str]:
        return frozenset({"kube-system", self.namespace})
