"""The answers without a full history (DESIGN §3, §7; issue 12): observed actors are never refused
in any mode, people are not refused blind, automation follows failClosed; a busy lock is a retry."""

from __future__ import annotations

import datetime
import json

import pytest

from tests import reviews
from webhook.actions.model import ActorClass
from webhook.admission.extract import extract
from webhook.admission.review import parse_review
from webhook.decision.decide import Decision, Outcome, retry_later, unchecked
from webhook.engine.gate import with_gaps
from webhook.store.errors import Gap, worst

NOW = datetime.datetime(2026, 12, 1, 8, 0, tzinfo=datetime.timezone.utc)


def proposal(**kwargs):
    request = parse_review(json.dumps(reviews.scale(before=3, after=5, **kwargs)).encode()).request
    return extract(request, now=NOW)


@pytest.mark.parametrize("actor_class", list(ActorClass))
@pytest.mark.parametrize("fail_closed", [False, True])
def test_only_automation_is_refused_and_only_with_fail_closed(actor_class, fail_closed):
    decision = unchecked(proposal(), fail_closed=fail_closed, actor_class=actor_class)
    refused = fail_closed and actor_class is ActorClass.AUTOMATION
    assert decision.allowed is not refused
    assert decision.event.actor_class is actor_class
    if refused:
        assert decision.outcome is Outcome.FAIL_CLOSED and decision.code == 503 and not decision.record
    else:
        assert decision.outcome is Outcome.FAIL_OPEN and decision.record
        assert "allowed unchecked" in decision.warnings[0]


def test_a_busy_lock_is_a_retryable_429_with_retry_after():
    decision = retry_later(proposal(), actor_class=ActorClass.AUTOMATION, retry_after=1, why="lock busy")
    response = decision.response()["response"]
    assert response["allowed"] is False and response["status"]["code"] == 429
    assert response["status"]["details"] == {"retryAfterSeconds": 1}
    assert decision.outcome is Outcome.RETRY and not decision.record


def allowed_for(actor_class: ActorClass) -> Decision:
    p = proposal()
    return Decision(outcome=Outcome.ALLOW, event=p.event.replace(actor_class=actor_class))


@pytest.mark.parametrize("actor_class", list(ActorClass))
@pytest.mark.parametrize("fail_closed", [False, True])
def test_an_admission_from_an_incomplete_window_warns_or_follows_fail_closed(actor_class, fail_closed):
    decided = with_gaps(allowed_for(actor_class), gaps={Gap.COLD_CACHE}, fail_closed=fail_closed,
                        proposal=proposal())
    if fail_closed and actor_class is ActorClass.AUTOMATION:
        assert decided.allowed is False and decided.code == 503
    elif actor_class is ActorClass.OBSERVED:
        assert decided.allowed is True and not decided.warnings  # never judged, so nothing to qualify
    else:
        assert decided.allowed is True
        assert any("without the full history" in w for w in decided.warnings)


def test_a_complete_window_or_a_refusal_is_left_alone():
    allowed = allowed_for(ActorClass.AUTOMATION)
    assert with_gaps(allowed, gaps={Gap.REDIS_DOWN, Gap.POSTGRES_DOWN}, fail_closed=True,
                     proposal=proposal()) is allowed
    refused = Decision(outcome=Outcome.DENY, event=allowed.event, code=429, message="cooling", record=False)
    assert with_gaps(refused, gaps={Gap.COLD_CACHE}, fail_closed=True, proposal=proposal()) is refused


def test_the_worst_gap_names_the_decision():
    assert worst({Gap.REDIS_DOWN, Gap.COLD_CACHE}) is Gap.COLD_CACHE
    assert worst({Gap.LOCK_BUSY, Gap.POSTGRES_DOWN}) is Gap.LOCK_BUSY
    assert worst(set()) is None
