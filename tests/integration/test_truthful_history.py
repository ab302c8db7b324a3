"""Truthful history on the real stores: proposals count while young, not-applied never counts,
a conflict retry counts once, and a restriction started on changes that never landed is withdrawn."""

from __future__ import annotations

import datetime

import pytest

from tests import reviews
from tests.stress.stores_helpers import gate_on, request_of, store_stack
from webhook.actions.model import TargetRef
from webhook.engine.proposals import proposed_change
from webhook.kube.confirmations import Observed, settle
from webhook.store.confirmation import ActionStatus, Resolution, Subject

CART = TargetRef(namespace="shop", kind="Deployment", name="cart", api_version="apps/v1")
CART_SUBJECT = Subject(kind="Deployment", namespace="shop", name="cart")


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def observed(*, replicas: int, version: str) -> Observed:
    obj = reviews.deployment(replicas=replicas)
    obj["metadata"].update(uid="cart-uid", resourceVersion=version)
    found = Observed.of("Deployment", obj)
    assert found is not None
    return found


def scale_body(before: int, after: int, *, version: str, **kwargs) -> dict:
    body = reviews.scale(before=before, after=after, **kwargs)
    body["request"]["oldObject"]["metadata"]["resourceVersion"] = version
    return body


async def counted(history) -> list[str]:
    events = await history.target_events(CART, since=now() - datetime.timedelta(hours=3), now=now())
    return [event.uid for event in events]


@pytest.fixture(params=["redis", "postgres-only"])
async def history(request, fresh_database, fresh_redis_url, tmp_path):
    url = fresh_redis_url if request.param == "redis" else None
    async with store_stack(dsn=fresh_database, redis_url=url, spool=tmp_path / "spool") as history:
        history.confirming = True
        yield history


async def test_without_a_cluster_every_admitted_change_counts_and_has_no_status(fresh_database, fresh_redis_url,
                                                                               tmp_path):
    async with store_stack(dsn=fresh_database, redis_url=fresh_redis_url, spool=tmp_path / "spool") as history:
        gate = gate_on(history)
        body = scale_body(3, 5, version="10")
        assert (await gate.review(request_of(body))).decision.allowed
        uid = body["request"]["uid"]
        assert await counted(history) == [uid]
        assert await history.statuses([uid]) == {uid: ActionStatus.RECORDED}
        assert await history.pending(CART_SUBJECT) == []


async def test_a_young_proposal_counts_and_a_confirmed_one_keeps_counting(history):
    gate = gate_on(history)
    body = scale_body(3, 5, version="10")
    assert (await gate.review(request_of(body))).decision.allowed
    uid = body["request"]["uid"]
    assert await history.statuses([uid]) == {uid: ActionStatus.PROPOSED}
    assert await counted(history) == [uid]
    await history.resolve(settle(await history.pending(CART_SUBJECT), observed(replicas=5, version="11")),
                          now=now())
    assert await history.statuses([uid]) == {uid: ActionStatus.CONFIRMED}
    assert await counted(history) == [uid]


async def test_a_change_that_never_landed_stops_counting_at_once(history):
    gate = gate_on(history)
    body = scale_body(3, 5, version="10")
    await gate.review(request_of(body))
    uid = body["request"]["uid"]
    assert await counted(history) == [uid]  # read once: the Redis copy is warm
    changed = await history.resolve([Resolution(uid=uid, status=ActionStatus.NOT_APPLIED, reason="denied later")],
                                    now=now())
    assert changed == 1
    assert await counted(history) == []
    # Settled is settled: a late watch event can no longer confirm it.
    assert await history.resolve([Resolution(uid=uid, status=ActionStatus.CONFIRMED, reason="late")], now=now()) == 0
    assert await history.statuses([uid]) == {uid: ActionStatus.NOT_APPLIED}


async def test_a_patch_retried_on_conflict_counts_once(history):
    gate = gate_on(history)
    first, retry = scale_body(3, 5, version="10"), scale_body(3, 5, version="11")
    for body in (first, retry):
        assert (await gate.review(request_of(body))).decision.allowed
    assert len(await counted(history)) == 2  # both wait; neither may slip through meanwhile
    pending = await history.pending(CART_SUBJECT)
    await history.resolve(settle(pending, observed(replicas=3, version="11")), now=now())  # the controller's write
    await history.resolve(settle(await history.pending(CART_SUBJECT), observed(replicas=5, version="12")), now=now())
    uids = [first["request"]["uid"], retry["request"]["uid"]]
    assert await history.statuses(uids) == {uids[0]: ActionStatus.NOT_APPLIED, uids[1]: ActionStatus.CONFIRMED}
    assert await counted(history) == [uids[1]]


async def test_forged_reviews_start_no_restriction_that_outlives_them(history):
    """Three forged scale reviews flap the target; the third is refused with a cooling period
    started on the strength of the first two proposals. Nothing ever lands: once they are
    not-applied the cooling period is withdrawn and the same change is admitted again."""
    gate = gate_on(history)
    bodies = [scale_body(b, a, version="10") for b, a in [(3, 5), (5, 3), (3, 5)]]
    answers = [await gate.review(request_of(body)) for body in bodies]
    assert [a.decision.allowed for a in answers] == [True, True, False]
    refused = await gate.review(request_of(scale_body(3, 5, version="10")))
    assert refused.decision.allowed is False  # the cooling period holds while the proposals count
    admitted = [body["request"]["uid"] for body in bodies[:2]]
    assert await history.resolve([Resolution(uid=uid, status=ActionStatus.NOT_APPLIED, reason="never landed")
                                  for uid in admitted], now=now()) == 2
    found = await history.postgres.pool.fetchval("SELECT count(*) FROM restrictions")
    assert found == 0
    again = await gate.review(request_of(scale_body(3, 5, version="10")))
    assert again.decision.allowed is True


async def test_a_restriction_on_confirmed_history_stays(history):
    gate = gate_on(history)
    bodies = [scale_body(b, a, version=str(10 + i)) for i, (b, a) in enumerate([(3, 5), (5, 3), (3, 5)])]
    answers = [await gate.review(request_of(body)) for body in bodies]
    assert answers[2].decision.allowed is False
    for replicas, version in [(5, "11"), (3, "12")]:
        await history.resolve(settle(await history.pending(CART_SUBJECT), observed(replicas=replicas,
                                                                                   version=version)), now=now())
    assert await history.postgres.pool.fetchval("SELECT count(*) FROM restrictions") == 1
    assert (await gate.review(request_of(scale_body(3, 5, version="13")))).decision.allowed is False


async def test_a_proposal_names_the_pipelinerun_it_creates(history):
    gate = gate_on(history)
    body = reviews.pipelinerun(namespace="kubernaut-workflows")
    body["request"]["name"] = body["request"]["object"]["metadata"].get("name") or "wfe-0123456789abcdef"
    body["request"]["object"]["metadata"]["name"] = body["request"]["name"]
    result = await gate.review(request_of(body))
    assert result.decision.allowed
    proposed = proposed_change(request_of(body), result.decision.event)
    assert proposed is not None
    [waiting] = await history.pending(proposed.subject)
    assert waiting.uid == body["request"]["uid"] and waiting.change == {"create": True}
