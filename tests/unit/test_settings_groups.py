"""Settings are parsed once and frozen; the groups are computed from the fields, never written back."""

from __future__ import annotations

import datetime
import pathlib

import pydantic
import pytest

from webhook.settings import LogFormat, Settings


def test_settings_are_frozen_and_copies_leave_the_original_alone() -> None:
    settings = Settings(port=9443)
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        settings.postgres_dsn = "postgresql://elsewhere"  # type: ignore[misc]
    completed = settings.with_values(postgres_dsn="postgresql://127.0.0.1:5432/gate")
    assert completed.stores.postgres_dsn == "postgresql://127.0.0.1:5432/gate"
    assert completed.stores.embedded_postgres is False
    assert settings.postgres_dsn is None and settings.stores.embedded_postgres is True
    assert completed.server.port == 9443  # everything else carried over


def test_a_copy_is_validated_like_a_flag() -> None:
    with pytest.raises(pydantic.ValidationError, match="port"):
        Settings().with_values(port=70000)


def test_groups_are_derived_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"SAFETY_GATE_PORT": "9000", "SAFETY_GATE_CLUSTER_ID": "east",
                        "SAFETY_GATE_RETENTION_MAX_AGE_DAYS": "7", "SAFETY_GATE_ALERT_STALE_HOURS": "1.5",
                        "SAFETY_GATE_EFFECTIVENESS_INTERVAL": "0", "SAFETY_GATE_CERT_RENEW_BEFORE": "2d",
                        "SAFETY_GATE_NAMESPACE": "gate-system", "SAFETY_GATE_LOG_FORMAT": "json",
                        "SAFETY_GATE_MAX_IN_FLIGHT": "8"}.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.server.port == 9000 and settings.server.log_format is LogFormat.JSON
    assert settings.stores.cluster_id == "east" and settings.stores.outbox_stream == "sg:east:outbox"
    assert settings.retention.max_age == datetime.timedelta(days=7)
    assert settings.retention.effectiveness_interval == 0
    assert settings.alerts.stale_after == datetime.timedelta(hours=1.5)
    assert settings.certificates.renew_before == datetime.timedelta(days=2)
    assert settings.kube.excluded_namespaces == {"kube-system", "gate-system"}
    assert settings.overload.max_in_flight == 8
    assert settings.kube.configured is False
    assert Settings(kubeconfig=pathlib.Path("/nowhere/kubeconfig")).kube.configured is True


def test_a_copy_recomputes_its_groups() -> None:
    settings = Settings(cluster_id="a")
    assert settings.stores.cluster_id == "a"
    assert settings.with_values(cluster_id="b").stores.outbox_stream == "sg:b:outbox"


def test_workers_come_from_the_environment_and_a_pod_needs_one(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().server.workers == 1  # one process, no parent: serve as it always was
    monkeypatch.setenv("SAFETY_GATE_WORKERS", "2")
    assert Settings().server.workers == 2
    with pytest.raises(pydantic.ValidationError, match="workers"):
        Settings(workers=0)


def test_serve_refuses_zero_workers_naming_the_flag() -> None:
    from typer.testing import CliRunner

    from webhook.cli.main import app

    result = CliRunner().invoke(app, ["serve", "--workers", "0"])
    assert result.exit_code == 2
    assert "--workers" in result.output


def test_each_worker_spools_apart_and_only_worker_0_runs_the_pod_jobs() -> None:
    from webhook.server.runtime import SINGLE_PROCESS, Worker

    workers = [Worker(index=i, count=3) for i in range(3)]
    assert SINGLE_PROCESS.spool_dir == workers[0].spool_dir == pathlib.PurePath("spool")  # as one process
    assert len({w.spool_dir for w in workers}) == 3  # a restarted worker i drains worker i's spool
    assert [w.runs_pod_jobs for w in workers] == [True, False, False]
