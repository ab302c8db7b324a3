"""Cluster OscillationPatterns as policies, the lookup cache, backoff and the no-cluster path."""

from __future__ import annotations

import asyncio
import datetime
import pathlib

import pytest

from webhook.kube.approvals import approval_patch
from webhook.kube.client import Backoff, KubeClient, KubeConfigError, load_api_client
from webhook.kube.lookups import BoundedCache
from webhook.kube.policies import parse_pattern
from webhook.policy.model import Enforcement, PatternType
from webhook.settings import Settings


def pattern(**spec_changes: object) -> dict:
    spec: dict = {
        "patternDefinition": {"patternType": "scale-oscillation",
                              "detectionCriteria": {"minOccurrences": 3, "timeWindow": "2h"}},
        "preventionStrategy": {"strategy": "cooling-period", "parameters": {"cooldownPeriod": "10m"}},
        "enforcementAction": "warn",
    }
    spec.update(spec_changes)
    return {"apiVersion": "ai.prometheus-alerts-slm.io/v1", "kind": "OscillationPattern",
            "metadata": {"name": "shop-scale", "resourceVersion": "7", "generation": 2, "uid": "u"}, "spec": spec}


def test_a_cluster_object_becomes_a_cluster_policy():
    policy = parse_pattern(pattern())
    assert policy is not None
    assert (policy.name, policy.source, policy.pattern, policy.enforcement) == (
        "shop-scale", "cluster", PatternType.SCALE_OSCILLATION, Enforcement.WARN)
    assert policy.duration("cooldownPeriod", "30m") == datetime.timedelta(minutes=10)


def test_an_invalid_object_is_logged_and_skipped(caplog: pytest.LogCaptureFixture):
    assert parse_pattern(pattern(enforcementAction="sometimes")) is None
    assert parse_pattern(pattern(patternDefinition={"patternType": "scale-oscillation",
                                                    "detectionCriteria": {"minOccurrences": 3,
                                                                          "timeWindow": "two hours"}})) is None
    assert "OscillationPattern shop-scale is invalid and not applied" in caplog.text
    assert "enforcementAction" in caplog.text


def test_an_approval_is_a_merge_patch_of_spec_approval_with_an_rfc3339_time():
    now = datetime.datetime(2026, 11, 21, 21, 0, 5, 123456, tzinfo=datetime.timezone.utc)
    assert approval_patch(approved_by="oncall", reason="fixed", now=now) == {
        "spec": {"approval": {"approvedBy": "oncall", "reason": "fixed", "approvedAt": "2026-11-21T21:00:05Z"}}}


def test_no_kubeconfig_and_not_in_a_cluster_means_no_kube_components_at_all():
    settings = Settings(kubeconfig=None, in_cluster=False)
    assert load_api_client(settings) is None
    assert KubeClient.from_settings(settings) is None


def test_an_unreadable_kubeconfig_is_a_clear_error(tmp_path: pathlib.Path):
    broken = tmp_path / "kubeconfig"
    broken.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    with pytest.raises(KubeConfigError, match="cannot load the cluster configuration"):
        load_api_client(Settings(kubeconfig=broken))


def test_backoff_doubles_up_to_the_cap_and_resets():
    backoff = Backoff(base=0.5, cap=3)
    assert [backoff.next() for _ in range(5)] == [0.5, 1, 2, 3, 3]
    backoff.reset()
    assert backoff.next() == 0.5


async def test_the_lookup_cache_answers_from_cache_and_never_waits_past_its_budget():
    calls: list[str] = []
    release = asyncio.Event()
    clock = [0.0]
    cache: BoundedCache[str] = BoundedCache(ttl=30, error_ttl=5, budget=0.05, clock=lambda: clock[0])

    async def slow() -> str:
        calls.append("slow")
        await release.wait()
        return "value"

    assert await cache.get("k", slow) is None          # too slow: decided without it
    assert await cache.get("k", slow) is None          # still in flight: not started twice
    assert calls == ["slow"]
    release.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert await cache.get("k", slow) == "value"       # the finished lookup filled the cache
    assert calls == ["slow"]

    async def failing() -> str:
        calls.append("failing")
        raise RuntimeError("api server down")

    assert await cache.get("e", failing) is None
    assert await cache.get("e", failing) is None       # the error is cached briefly
    clock[0] = 6
    assert await cache.get("e", failing) is None
    assert calls.count("failing") == 2
