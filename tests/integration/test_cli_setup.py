"""``safety-gate migrate`` and ``safety-gate certs``: the set-up commands, run as a person would."""

from __future__ import annotations

import ssl
import subprocess
import sys

from tests.sql import fetch
from webhook.tls.certinfo import covers, issued_by


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "webhook", *args], capture_output=True, text=True, timeout=120)


def test_migrate_applies_every_migration_once(fresh_database):
    first = run("migrate", "--postgres-dsn", fresh_database)
    assert first.returncode == 0, first.stderr
    assert "0001_history.sql" in first.stdout
    versions = [row["version"] for row in fetch(fresh_database, "SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions[:2] == ["0001_history.sql", "0002_patterns_and_decisions.sql"]
    again = run("migrate", "--postgres-dsn", fresh_database)
    assert again.returncode == 0 and "applied 0 migration(s)" in again.stdout
    tables = {row["tablename"] for row in fetch(fresh_database, "SELECT tablename FROM pg_tables")}
    assert {"resource_references", "action_histories", "resource_action_traces", "oscillation_patterns",
            "oscillation_detections", "action_effectiveness_metrics", "retention_operations",
            "admission_decisions"} <= tables


def test_certs_writes_a_chain_for_localhost(tmp_path):
    result = run("certs", "--out", str(tmp_path), "--host", "gate.example")
    assert result.returncode == 0, result.stderr
    ca, cert = (tmp_path / "ca.crt").read_bytes(), (tmp_path / "tls.crt").read_bytes()
    assert issued_by(cert, ca)
    assert covers(cert, ["localhost", "127.0.0.1", "gate.example"])
    assert (tmp_path / "tls.key").stat().st_mode & 0o077 == 0
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")  # the key matches the certificate


def test_serve_refuses_a_bad_policy_file_before_starting(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("kind: OscillationPattern\nmetadata: {name: typo}\n"
                      "spec: {patternDefinition: {patternType: scale-oscilation}}\n")
    result = run("serve", "--policy", str(policy), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2
    message = " ".join(result.stdout.split() + result.stderr.split())
    assert "OscillationPattern typo: spec.patternDefinition.patternType" in message
    assert not (tmp_path / "data" / "postgres").exists()  # nothing was started
