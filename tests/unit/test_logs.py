"""The JSON log line: one object per record, decision fields kept, secrets never written, and the
log level setting honoured."""

from __future__ import annotations

import io
import json
import logging

import pytest

from webhook.server import logs
from webhook.server.validate import observe


@pytest.fixture
def captured():
    """Route the root logger through ``logs.configure`` into a buffer; restore it afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    buffer = io.StringIO()

    def configure(level: str) -> io.StringIO:
        logs.configure(level)
        root.handlers[0].setStream(buffer)  # type: ignore[attr-defined]
        return buffer

    yield configure
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


@pytest.mark.parametrize("secret_text, leaked, kept", [
    ("cannot connect to postgresql://gate:s3cr3t-pw@db.example:5432/history", "s3cr3t-pw",
     "postgresql://gate:***@db.example:5432/history"),
    ("redis down: redis://:r3dis-pw@cache:6379/0", "r3dis-pw", "redis://:***@cache:6379/0"),
    ("dsn host=db user=gate password=kw-secret dbname=x", "kw-secret", "password=***"),
    ("Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.payload.sig", "eyJhbGciOiJSUzI1NiJ9", "Bearer ***"),
    ("https://api/v1?token=tok-123&watch=1", "tok-123", "token=***&watch=1"),
])
def test_secrets_are_redacted_in_messages_extras_and_tracebacks(captured, secret_text, leaked, kept):
    buffer = captured("info")
    log = logging.getLogger("safety_gate.test")
    log.info("%s", secret_text)
    log.warning("store trouble", extra={"dsn": secret_text})
    try:
        raise ConnectionError(secret_text)
    except ConnectionError:
        log.exception("failed")
    text = buffer.getvalue()
    assert leaked not in text
    assert kept in text
    records = lines(buffer)
    assert [r["level"] for r in records] == ["info", "warning", "error"]
    assert kept in records[0]["msg"] and kept in records[1]["dsn"] and kept in records[2]["exc"]


def test_urls_without_passwords_are_untouched():
    assert logs.redact("postgresql://gate@db:5432/x") == "postgresql://gate@db:5432/x"
    assert logs.redact("allowed scale_deployment shop/Deployment/cart") == "allowed scale_deployment shop/Deployment/cart"


@pytest.mark.parametrize("level, shown", [("debug", 3), ("INFO", 2), ("warning", 1), ("ERROR", 0)])
def test_the_level_setting_filters_records(captured, level, shown):
    buffer = captured(level)
    log = logging.getLogger("safety_gate.level")
    log.debug("d")
    log.info("i")
    log.warning("w")
    assert len(lines(buffer)) == shown


def test_an_unknown_level_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="debug, info, warning, error or critical"):
        logs.level_number("chatty")


def test_one_decision_is_one_json_line_with_its_fields(captured):
    import datetime

    from webhook.actions.model import ActionEvent, ActorClass, TargetRef
    from webhook.decision.decide import Decision, Outcome
    from webhook.engine.gate import GateResult

    buffer = captured("info")
    event = ActionEvent(uid="u-1", at=datetime.datetime.now(datetime.timezone.utc),
                        target=TargetRef("shop", "Deployment", "cart"), action_type="scale_deployment",
                        actor="system:serviceaccount:remediation:agent", actor_class=ActorClass.AUTOMATION,
                        replicas_before=3, replicas_after=5)
    decision = Decision(outcome=Outcome.DENY, event=event, code=429, message="safety-gate: cooling period",
                        record=False)
    observe(GateResult(response=decision.response(), decision=decision, latency_ms=1.5))
    (record,) = [r for r in lines(buffer) if r["logger"] == "safety_gate.decisions"]
    assert record["uid"] == "u-1"
    assert record["target"] == "shop/Deployment/cart"
    assert record["actor"] == "system:serviceaccount:remediation:agent"
    assert record["action"] == "scale_deployment"
    assert record["decision"] == "deny"
    assert record["latency_ms"] == 1.5
    assert record["dry_run"] is False
    assert "pattern" in record
