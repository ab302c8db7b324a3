"""Redis losing its data while PostgreSQL is down, through a real gate process (issue 12, item 4):
the old gate decided cold targets from empty history, admitted them, and said ready and not degraded."""

from __future__ import annotations

import pytest
import redis

from tests import reviews
from tests.gateproc import GateProcess
from tests.polling import wait_until


@pytest.mark.parametrize("fail_closed", [False, True])
def test_a_cold_cache_with_postgres_down_is_degraded_and_said_so(tmp_path, embedded_postgres_factory,
                                                                 embedded_redis_factory, fail_closed):
    postgres, redis_server = embedded_postgres_factory(), embedded_redis_factory()
    args = ["--fail-closed"] if fail_closed else []
    with GateProcess(data_dir=tmp_path / "gate", postgres_dsn=postgres.dsn, redis_url=redis_server.url,
                     extra_args=args) as gate:
        for before, after in [(3, 5), (5, 3)]:
            assert gate.decide(reviews.scale(before=before, after=after))["allowed"] is True
        postgres.stop()
        client = redis.Redis.from_url(redis_server.url)
        try:
            client.flushall()  # Redis restarted without its data: every cached history is gone
        finally:
            client.close()
        wait_until(lambda: gate.client.get("/readyz").json()["stores"]["postgres"] == "down", what="postgres down")

        # This reversal would start a cooling period with the full history; the gate cannot know.
        agent = gate.decide(reviews.scale(before=3, after=5))
        hpa = gate.decide(reviews.scale(before=5, after=7, user=reviews.HPA))
        person = gate.decide(reviews.scale(before=7, after=5, user=reviews.PERSON))
        if fail_closed:
            assert agent["allowed"] is False and agent["status"]["code"] == 503
        else:
            assert agent["allowed"] is True
            assert any("without the full history" in w for w in agent["warnings"])
        assert hpa["allowed"] is True
        assert person["allowed"] is True and any("without the full history" in w for w in person["warnings"])
        readiness = wait_until(lambda: (body := gate.client.get("/readyz").json()).get("history") == "incomplete"
                               and body, what="readiness to see the cold cache")
        assert readiness["degraded"] is True and readiness["stores"] == {"postgres": "down", "redis": "up"}
        metrics = gate.client.get("/metrics").text
        assert f'safety_gate_degraded_decisions_total{{mode="decided",reason="cold-cache"}} {2.0 if fail_closed else 3.0}' \
            in metrics
        if fail_closed:
            assert 'safety_gate_degraded_decisions_total{mode="fail-closed",reason="cold-cache"} 1.0' in metrics

        postgres.start()
        wait_until(lambda: gate.client.get("/readyz").json()["history"] == "complete", what="postgres back")
        assert gate.client.get("/readyz").json()["degraded"] is False
