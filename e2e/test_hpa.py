"""The real HorizontalPodAutoscaler against an agent, through the gate (DESIGN §3, §4 controller-fight).

The HPA here is Kubernetes' own controller in the suite's kube-controller-manager. There is no
metrics-server, so the only thing it does is what it always does first: clamp the replicas into
``[minReplicas, maxReplicas]`` (1→3 below the minimum, 10→6 above the maximum). An agent that
keeps moving the replicas out of bounds is fighting it; the gate must refuse the agent's next
move with a message naming the HPA, and never refuse the HPA or let its corrections start a
restriction on the workload.
"""

from __future__ import annotations

import pytest
from cluster import (
    CONTROLLER_MANAGER_USER,
    HPA_USER,
    ControlPlane,
    deployment,
    horizontal_pod_autoscaler,
    replicas_of,
    wait_for,
)
from test_gate_scaling import DENIED, agent_of, scale


def hpa_corrects(cluster: ControlPlane, namespace: str, name: str, replicas: int) -> None:
    wait_for(lambda: replicas_of(cluster, name, namespace) == replicas, timeout=90, interval=0.3,
             description=f"the HPA to move {namespace}/{name} to {replicas} replicas")


def recorded(gate, namespace: str, name: str) -> list[tuple[str, str, int | None, int | None]]:
    """(actor, actor class, before, after) of every replica change the gate recorded on the Deployment."""
    rows = gate.sql("SELECT actor, actor_class, replicas_before, replicas_after FROM resource_action_traces "
                    "WHERE namespace = $1 AND name = $2 ORDER BY action_timestamp", namespace, name)
    changes = [(r["actor"], r["actor_class"], r["replicas_before"], r["replicas_after"]) for r in rows]
    # One kubectl scale can reach the gate twice: the API server re-runs admission when it retries
    # a write that conflicted with the Deployment controller's (issue 13, truthful history).
    return [c for i, c in enumerate(changes) if i == 0 or c != changes[i - 1]]


def fight(cluster: ControlPlane, gate, namespace: str, *, start: int, out_of_bounds: int, clamped: int,
          hpa_user: str = HPA_USER, **bounds: int) -> None:
    agent = agent_of(cluster, namespace)
    cluster.apply([deployment("web", namespace, replicas=start),
                   horizontal_pod_autoscaler("web", namespace, deployment_name="web", **bounds)])

    first = scale(cluster, namespace, "web", out_of_bounds, as_user=agent)
    assert first.returncode == 0, first.stderr
    hpa_corrects(cluster, namespace, "web", clamped)

    again = scale(cluster, namespace, "web", out_of_bounds, as_user=agent)
    assert again.returncode != 0, again.stdout
    assert DENIED in again.stderr
    assert "controller-fight" in again.stderr and "(Forbidden)" in again.stderr, again.stderr
    assert hpa_user in again.stderr
    assert f"HorizontalPodAutoscaler {namespace}/web" in again.stderr, again.stderr  # whose bounds to change
    assert replicas_of(cluster, "web", namespace) == clamped

    changes = recorded(gate, namespace, "web")
    assert changes[:2] == [(agent, "automation", start, out_of_bounds), (hpa_user, "observed", out_of_bounds, clamped)]
    assert all(actor != agent for actor, *_ in changes[2:])  # the refused move is not history
    hpa_decisions = [d for d in gate.decisions(namespace) if d["actor"] == hpa_user]
    assert hpa_decisions and all(d["allowed"] for d in hpa_decisions)


def test_the_hpa_clamps_up_to_min_replicas_and_the_agent_s_next_move_is_refused(cluster: ControlPlane, gate,
                                                                                 namespace: str):
    fight(cluster, gate, namespace, start=3, out_of_bounds=1, clamped=3, min_replicas=3, max_replicas=6)


def test_the_hpa_clamps_down_to_max_replicas_and_the_agent_s_next_move_is_refused(cluster: ControlPlane, gate,
                                                                                   namespace: str):
    fight(cluster, gate, namespace, start=4, out_of_bounds=10, clamped=6, min_replicas=2, max_replicas=6)


def test_the_hpa_making_the_second_reversal_starts_no_cooling_period(cluster: ControlPlane, gate, namespace: str):
    agent = agent_of(cluster, namespace)
    cluster.apply([deployment("web", namespace, replicas=4),
                   horizontal_pod_autoscaler("web", namespace, deployment_name="web", min_replicas=3,
                                             max_replicas=6)])
    assert scale(cluster, namespace, "web", 6, as_user=agent).returncode == 0   # 4→6, within bounds
    down = scale(cluster, namespace, "web", 2, as_user=agent)                   # 6→2: first reversal
    assert down.returncode == 0, down.stderr
    hpa_corrects(cluster, namespace, "web", 3)                                  # 2→3: the HPA's, the second

    assert [c[1:] for c in recorded(gate, namespace, "web")] == [
        ("automation", 4, 6), ("automation", 6, 2), ("observed", 2, 3)]
    assert all(d["allowed"] for d in gate.decisions(namespace) if d["actor"] == HPA_USER)
    assert gate.count("SELECT count(*) FROM restrictions WHERE scope LIKE $1", f"%{namespace}%") == 0

    # A cooling period would refuse every replica change on the Deployment; the agent's next one,
    # in the HPA's direction and inside its bounds, is neither oscillation nor a fight.
    onward = scale(cluster, namespace, "web", 4, as_user=agent)
    assert onward.returncode == 0, onward.stderr
    assert replicas_of(cluster, "web", namespace) == 4


def test_without_per_controller_credentials_the_hpa_is_the_controller_manager_and_still_observed(
        cluster: ControlPlane, gate, namespace: str):
    if not hasattr(cluster, "controllers") or not cluster.controllers:
        pytest.skip("needs the local control plane's controller-manager, which this test restarts")
    cluster.start_controller_manager(use_service_account_credentials=False)
    try:
        fight(cluster, gate, namespace, start=3, out_of_bounds=1, clamped=3, hpa_user=CONTROLLER_MANAGER_USER,
              min_replicas=3, max_replicas=5)
        warned = [d for d in gate.decisions(namespace) if d["actor"] == CONTROLLER_MANAGER_USER]
        assert warned and all(d["actor_class"] == "observed" and d["warnings"] in ([], "[]") for d in warned)
    finally:
        cluster.start_controller_manager(use_service_account_credentials=True)
