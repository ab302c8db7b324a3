"""Process settings: CLI flags and ``SAFETY_GATE_*`` environment variables (DESIGN §6).

``Settings`` is frozen: it is parsed once (flags over environment over defaults) and never
changed afterwards; a step that learns something (the embedded stores' addresses, a certificate
pair) makes a new one with :meth:`Settings.with_values`. Its flat fields are the names of the
flags and variables; code reads them by concern through the groups (``settings.server``,
``settings.stores``, ``settings.kube``, ``settings.certificates``, ``settings.retention``,
``settings.summaries_group``, ``settings.overload``, ``settings.alerts``, ``settings.actors``), frozen
dataclasses in the manner of kopf's ``OperatorSettings``, whose derived values (durations, whether
a cluster or embedded stores are needed) are computed from the fields, never written back.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import pathlib
from typing import Any

import pydantic
import pydantic_settings

from webhook.policy.actors import DEFAULT_OBSERVED_GROUPS, DEFAULT_OBSERVED_USERS, ActorRules
from webhook.policy.durations import parse_duration


class LogFormat(str, enum.Enum):
    """``--log-format``: JSON lines for collectors, readable lines for people, or by the output."""

    AUTO = "auto"  # text on a terminal, JSON otherwise
    JSON = "json"
    TEXT = "text"


@dataclasses.dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str
    port: int
    metrics_port: int  # 0: /metrics on the main port only
    tls_cert: pathlib.Path | None
    tls_key: pathlib.Path | None
    max_body_bytes: int
    api_token_file: pathlib.Path | None
    log_level: str
    log_format: LogFormat
    workers: int  # 1: one process; N ≥ 2: a parent owning the pod's parts and N serving workers

    @property
    def has_tls_files(self) -> bool:
        return self.tls_cert is not None and self.tls_key is not None


@dataclasses.dataclass(frozen=True, slots=True)
class StoreSettings:
    postgres_dsn: str | None
    redis_url: str | None
    data_dir: pathlib.Path
    cluster_id: str
    fail_closed: bool
    upkeep_interval: float

    @property
    def embedded_postgres(self) -> bool:
        """No DSN given: an embedded PostgreSQL under the data dir."""
        return not self.postgres_dsn

    @property
    def embedded_redis(self) -> bool:
        return not self.redis_url

    @property
    def outbox_stream(self) -> str:
        return f"sg:{self.cluster_id}:outbox"


@dataclasses.dataclass(frozen=True, slots=True)
class KubeSettings:
    kubeconfig: pathlib.Path | None
    in_cluster: bool
    namespace: str  # the gate's own namespace: never gated
    pod_name: str | None
    webhook_config: str | None
    timeout: float

    @property
    def configured(self) -> bool:
        """Whether the gate has a cluster (and so its Kubernetes edge)."""
        return self.kubeconfig is not None or self.in_cluster

    @property
    def excluded_namespaces(self) -> frozenset[str]:
        return frozenset({"kube-system", self.namespace})


@dataclasses.dataclass(frozen=True, slots=True)
class OverloadSettings:
    max_in_flight: int
    max_in_flight_per_actor: int


@dataclasses.dataclass(frozen=True, slots=True)
class AlertSettings:
    queue_size: int
    sweep_seconds: float
    stale_after: datetime.timedelta


@dataclasses.dataclass(frozen=True, slots=True)
class RetentionSettings:
    interval: float  # 0: never inside the server
    max_age: datetime.timedelta
    effectiveness_interval: float  # 0: never


@dataclasses.dataclass(frozen=True, slots=True)
class SummarySettings:
    enabled: bool
    interval: float
    writes_per_second: float
    burst: int
    settle_seconds: float
    resync_seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class CertificateSettings:
    secret: str | None
    service_name: str
    ca_validity: datetime.timedelta
    cert_validity: datetime.timedelta
    renew_before: datetime.timedelta
    propagation: datetime.timedelta
    overlap: datetime.timedelta
    check_interval: float

    @property
    def self_managed(self) -> bool:
        return self.secret is not None


class Settings(pydantic_settings.BaseSettings):
    model_config = pydantic_settings.SettingsConfigDict(env_prefix="SAFETY_GATE_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = pydantic.Field(default=8443, ge=0, le=65535)
    metrics_port: int = pydantic.Field(default=0, ge=0, le=65535)  # 0: /metrics on the main port only
    tls_cert: pathlib.Path | None = None
    tls_key: pathlib.Path | None = None
    # CA of the API server's admission client certificate: /validate refuses callers without one.
    validate_client_ca: pathlib.Path | None = None
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
    # Serving processes per pod (webhook.cli.workers): 1 is one process, as always; N ≥ 2 a parent
    # that owns the embedded stores, the TLS files and the signals, and N workers sharing the port,
    # each a full gate like a replica.
    workers: int = pydantic.Field(default=1, ge=1, le=64)
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

    @pydantic.field_validator("port", "metrics_port", mode="before")
    @classmethod
    def _not_a_service_link(cls, value: object, info: pydantic.ValidationInfo) -> object:
        """Kubernetes injects ``<SERVICE>_PORT=tcp://10.96.0.10:443`` into pods for every Service of
        their namespace. A Service named ``safety-gate`` (or ``safety-gate-metrics``) thus sets
        ``SAFETY_GATE_PORT`` (``SAFETY_GATE_METRICS_PORT``), which no one meant for the gate; the
        chart disables service links, but a pod of another chart may not. Such a value is a
        Docker-link address, never a port number, so it falls back to the default."""
        if isinstance(value, str) and value.startswith(("tcp://", "udp://", "sctp://")):
            return cls.model_fields[str(info.field_name)].default
        return value

    @pydantic.field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"unknown log level {value!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    def with_values(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (validated like flags): what a step learnt, never written back."""
        return type(self).model_validate({**self.model_dump(), **changes})

    # --- the groups: read-only views, computed from the fields on every access -----------------

    @property
    def server(self) -> ServerSettings:
        return ServerSettings(host=self.host, port=self.port, metrics_port=self.metrics_port,
                              tls_cert=self.tls_cert, tls_key=self.tls_key, max_body_bytes=self.max_body_bytes,
                              api_token_file=self.api_token_file, log_level=self.log_level,
                              log_format=self.log_format, workers=self.workers)

    @property
    def stores(self) -> StoreSettings:
        return StoreSettings(postgres_dsn=self.postgres_dsn, redis_url=self.redis_url, data_dir=self.data_dir,
                             cluster_id=self.cluster_id, fail_closed=self.fail_closed,
                             upkeep_interval=self.upkeep_interval)

    @property
    def kube(self) -> KubeSettings:
        return KubeSettings(kubeconfig=self.kubeconfig, in_cluster=self.in_cluster, namespace=self.namespace,
                            pod_name=self.pod_name, webhook_config=self.webhook_config,
                            timeout=self.kube_timeout_seconds)

    @property
    def overload(self) -> OverloadSettings:
        return OverloadSettings(max_in_flight=self.max_in_flight,
                                max_in_flight_per_actor=self.max_in_flight_per_actor)

    @property
    def alerts(self) -> AlertSettings:
        return AlertSettings(queue_size=self.alert_queue_size, sweep_seconds=self.alert_sweep_seconds,
                             stale_after=datetime.timedelta(hours=self.alert_stale_hours))

    @property
    def retention(self) -> RetentionSettings:
        return RetentionSettings(interval=self.retention_interval,
                                 max_age=datetime.timedelta(days=self.retention_max_age_days),
                                 effectiveness_interval=self.effectiveness_interval)

    @property
    def summaries_group(self) -> SummarySettings:
        """The summaries' group (``summaries`` itself is the ``--summaries/--no-summaries`` flag)."""
        return SummarySettings(enabled=self.summaries, interval=self.summary_interval,
                               writes_per_second=self.summary_writes_per_second, burst=self.summary_burst,
                               settle_seconds=self.summary_settle_seconds,
                               resync_seconds=self.summary_resync_seconds)

    @property
    def certificates(self) -> CertificateSettings:
        return CertificateSettings(secret=self.cert_secret, service_name=self.service_name,
                                   ca_validity=self.ca_validity, cert_validity=self.cert_validity,
                                   renew_before=self.cert_renew_before, propagation=self.cert_propagation,
                                   overlap=self.cert_overlap, check_interval=self.cert_check_interval)

    @property
    def actors(self) -> ActorRules:
        return self.actor_rules()

    def actor_rules(self) -> ActorRules:
        return ActorRules(
            observed_users=tuple(self.observed_users),
            observed_groups=tuple(self.observed_groups),
            bypass_subjects=tuple(self.bypass_subjects),
        )

    @property
    def excluded_namespaces(self) -> frozenset[str]:
        return self.kube.excluded_namespaces
