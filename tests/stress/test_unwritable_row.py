"""A row PostgreSQL refuses never jams the outbox and is never silently lost (issue 12, item 3).

On the old main one such bundle — replicas 2^31, a NUL in an image, a memory of ``1e309`` — queued
during an outage blocked the outbox for good: every drain hit it first, the refusal was taken for
an outage, and no later admitted action ever reached PostgreSQL. Now it is recorded in a storable
form, kept whole as a dead letter with the reason, counted, and the rest drains.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import subprocess
import sys
import uuid

import asyncpg
import pytest

from tests.stress.stores_helpers import store_stack
from webhook import metrics
from webhook.actions.model import ActionEvent, ActorClass, ImageChange, ResourceChange, TargetRef
from webhook.store.effects import Effects

AGENT = "system:serviceaccount:remediation:kubernaut-agent"


def effects(name: str, **event_fields) -> Effects:
    now = datetime.datetime.now(datetime.timezone.utc)
    event = ActionEvent(uid=str(uuid.uuid4()), at=now, target=TargetRef("shop", "Deployment", name, "apps/v1"),
                        action_type=event_fields.pop("action_type", "scale_deployment"), actor=AGENT,
                        actor_class=ActorClass.AUTOMATION, **event_fields)
    return Effects(uid=event.uid, decided_at=now, event=event, record=True, outcome="allow", allowed=True,
                   code=None, pattern=None, strategy=None, message=None, warnings=(), latency_ms=1.0)


def poisoned() -> dict[str, Effects]:
    return {
        "replicas 2^31": effects("huge", replicas_before=3, replicas_after=2**31),
        "NUL in an image": effects("nul", action_type="update_deployment",
                                   image_changes=(ImageChange("app", "cart:1.0", "cart:1.1\x00evil"),)),
        "memory 1e309": effects("inf", action_type="increase_resources", resource_changes=(
            ResourceChange("app", "memory", "limits", 64 * 2**20, float("1e309"), "64Mi", "1e309"),)),
    }


async def rows(dsn: str, sql: str, *args) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetch(sql, *args)
    finally:
        await connection.close()


def dead_letter_count(resolution: str) -> float:
    return metrics.DEAD_LETTERS.labels(resolution=resolution)._value.get()


@pytest.mark.parametrize("outbox", ["redis", "spool"])
async def test_refused_rows_in_the_outbox_become_dead_letters_and_the_rest_drains(
        fresh_database, fresh_redis_url, tmp_path, outbox):
    async with store_stack(dsn=fresh_database, redis_url=fresh_redis_url if outbox == "redis" else None,
                           spool=tmp_path / "outbox.jsonl") as history:
        bad = poisoned()
        good = [effects(f"good-{i}", replicas_before=i, replicas_after=i + 1) for i in range(3)]
        queue = [good[0], *bad.values(), good[1], good[2]]  # the refused rows come first: they used to jam
        history.postgres_up = False  # PostgreSQL "down": every decision goes to the outbox
        for bundle in queue:
            assert await history.remember(bundle, now=bundle.decided_at) == outbox
        assert await history.outbox_depth() == len(queue)
        sanitized_before = dead_letter_count("sanitized")

        history.postgres_up = True
        await history.drain()

        assert await history.outbox_depth() == 0
        assert history.postgres_up is True  # a refused row is not an outage
        traced = {row["request_uid"]: row for row in await rows(
            fresh_database, "SELECT request_uid, replicas_after, event FROM resource_action_traces")}
        assert set(traced) == {b.uid for b in queue}  # every admitted action counts as history, once
        assert traced[bad["replicas 2^31"].uid]["replicas_after"] == 2**31 - 1
        image = json.loads(traced[bad["NUL in an image"].uid]["event"])["image_changes"][0]["after"]
        assert image == "cart:1.1evil"
        memory = json.loads(traced[bad["memory 1e309"].uid]["event"])["resource_changes"][0]["after"]
        assert memory is None
        letters = {row["request_uid"]: row for row in await rows(
            fresh_database, "SELECT request_uid, reason, resolution, payload FROM dead_letters")}
        assert set(letters) == {b.uid for b in bad.values()}
        for row in letters.values():
            assert row["resolution"] == "sanitized" and row["reason"]
        # The original is kept whole, NUL and all, as escaped JSON.
        original = json.loads(letters[bad["NUL in an image"].uid]["payload"])
        assert original["event"]["image_changes"][0]["after"] == "cart:1.1\x00evil"
        assert dead_letter_count("sanitized") - sanitized_before == 3

        await history.drain()  # a second drain finds nothing and keeps nothing twice
        assert len(await rows(fresh_database, "SELECT 1 FROM dead_letters")) == 3


async def test_a_refused_row_written_directly_is_kept_and_the_next_decision_lands(fresh_database, tmp_path):
    async with store_stack(dsn=fresh_database, redis_url=None, spool=tmp_path / "outbox.jsonl") as history:
        bad = poisoned()["replicas 2^31"]
        assert await history.remember(bad, now=bad.decided_at) == "dead-letter"
        after = effects("next", replicas_before=1, replicas_after=2)
        assert await history.remember(after, now=after.decided_at) == "postgres"
        uids = {r["request_uid"] for r in await rows(fresh_database, "SELECT request_uid FROM resource_action_traces")}
        assert uids == {bad.uid, after.uid}
        assert [r["request_uid"] for r in await rows(fresh_database, "SELECT request_uid FROM dead_letters")] == [bad.uid]


async def test_a_torn_spool_line_is_kept_as_a_dead_letter_and_does_not_block_the_spool(fresh_database, tmp_path):
    spool = tmp_path / "outbox.jsonl"
    async with store_stack(dsn=fresh_database, redis_url=None, spool=spool) as history:
        first, second = effects("a", replicas_before=1, replicas_after=2), effects("b", replicas_before=2,
                                                                                replicas_after=3)
        history.postgres_up = False
        await history.remember(first, now=first.decided_at)
        with open(spool, "a", encoding="utf-8") as handle:
            handle.write('{"uid": "torn", "decided_at": "2026-\n')  # a crash mid-write
        await history.remember(second, now=second.decided_at)
        history.postgres_up = True
        await history.drain()
        assert not spool.exists()
        uids = {r["request_uid"] for r in await rows(fresh_database, "SELECT request_uid FROM resource_action_traces")}
        assert uids == {first.uid, second.uid}
        held = await rows(fresh_database, "SELECT reason, resolution, payload FROM dead_letters")
        assert len(held) == 1 and held[0]["resolution"] == "held" and "unreadable" in held[0]["reason"]
        assert json.loads(held[0]["payload"]).startswith('{"uid": "torn"')


async def test_dead_letters_are_listed_by_the_cli(fresh_database, tmp_path):
    async with store_stack(dsn=fresh_database, redis_url=None, spool=tmp_path / "outbox.jsonl") as history:
        for bundle in poisoned().values():
            await history.remember(bundle, now=bundle.decided_at)
    command = [sys.executable, "-m", "webhook", "dead-letters", "--postgres-dsn", fresh_database]
    listed = await asyncio.to_thread(subprocess.run, [*command, "--json"], capture_output=True, text=True,
                                     timeout=120)
    assert listed.returncode == 0, listed.stderr
    letters = json.loads(listed.stdout)
    assert len(letters) == 3
    assert {letter["resolution"] for letter in letters} == {"sanitized"}
    assert all(letter["reason"] and letter["request_uid"] for letter in letters)
    assert any("2147483648" in letter["payload"] for letter in letters)
    table = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=120,
                                    env={**os.environ, "COLUMNS": "200"})
    assert table.returncode == 0 and "sanitized" in table.stdout and "RESOLUTION" in table.stdout


async def test_two_replicas_draining_one_outbox_full_of_refused_rows_land_everything_once(
        fresh_database, fresh_redis_url, tmp_path):
    """A storm: 200 decisions queued during an outage, every seventh one unstorable, drained by two
    replicas at once. Nothing jams, nothing is lost, nothing lands or is dead-lettered twice."""
    async with store_stack(dsn=fresh_database, redis_url=fresh_redis_url, spool=tmp_path / "a") as first, \
            store_stack(dsn=fresh_database, redis_url=fresh_redis_url, spool=tmp_path / "b",
                        migrated=False) as second:
        kinds = list(poisoned())
        queue = [poisoned()[kinds[i % 3]] if i % 7 == 0 else effects(f"w-{i}", replicas_before=i, replicas_after=i + 1)
                 for i in range(200)]
        first.postgres_up = second.postgres_up = False
        for i, bundle in enumerate(queue):
            await (first if i % 2 else second).remember(bundle, now=bundle.decided_at)
        first.postgres_up = second.postgres_up = True
        await asyncio.gather(first.drain(), second.drain(), first.drain())
        assert await first.outbox_depth() == 0
        counts = {r["request_uid"]: r["n"] for r in await rows(
            fresh_database, "SELECT request_uid, count(*) AS n FROM resource_action_traces GROUP BY request_uid")}
        assert set(counts) == {b.uid for b in queue} and set(counts.values()) == {1}
        letters = await rows(fresh_database, "SELECT request_uid FROM dead_letters")
        assert sorted(r["request_uid"] for r in letters) == sorted(b.uid for i, b in enumerate(queue) if i % 7 == 0)
        decisions = await rows(fresh_database, "SELECT count(*) AS n FROM admission_decisions")
        assert decisions[0]["n"] == 200
