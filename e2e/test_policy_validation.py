"""OscillationPatterns the gate cannot use, against the real API server: the CRD's schema refuses
what it can, and an object that gets past it (a cluster whose CRD predates the rules — Helm never
upgrades ``crds/``) is not applied: the last valid policy stays in force, and the object says why
in an ``Accepted`` condition and a Warning Event."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from cluster import CHART_CRD_DIR, ControlPlane, deployment, load_yaml_documents, wait_for
from test_gate_cluster_objects import agent_of, scale, scale_policy

from webhook.policy.defaults import DEFAULT_DOCUMENTS

CRD_FILE = CHART_CRD_DIR / "oscillationpatterns.yaml"
API_VERSION = "ai.prometheus-alerts-slm.io/v1"


def pattern(name: str, **changes: Any) -> dict[str, Any]:
    """A valid cluster-wide scale-oscillation policy in dry-run mode, with dotted-path changes."""
    doc: dict[str, Any] = {
        "apiVersion": API_VERSION, "kind": "OscillationPattern", "metadata": {"name": name},
        "spec": {
            "enforcementAction": "dryrun",
            "patternDefinition": {"patternType": "scale-oscillation",
                                  "detectionCriteria": {"minOccurrences": 3, "timeWindow": "2h",
                                                        "thresholds": {"directionChanges": 2}}},
            "preventionStrategy": {"strategy": "cooling-period", "parameters": {"cooldownPeriod": "30m"}},
        },
    }
    for path, value in changes.items():
        node = doc
        *parents, last = path.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return doc


def server_dry_run(cluster: ControlPlane, doc: dict[str, Any]):
    return cluster.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(doc))


def test_the_crd_accepts_every_default_and_refuses_what_the_gate_would_refuse(cluster: ControlPlane):
    for doc in DEFAULT_DOCUMENTS:
        res = server_dry_run(cluster, {"apiVersion": API_VERSION, "kind": "OscillationPattern", **doc})
        assert res.returncode == 0, res.stderr
    params = "spec__preventionStrategy__parameters"
    criteria = "spec__patternDefinition__detectionCriteria"
    refused = {
        "escalate-window": ({f"{params}": {"escalateWindow": "1 day"}}, "durations from 1s to 400d"),
        "huge-window": ({f"{criteria}__timeWindow": "999999d"}, "timeWindow must be from 1s to 400d"),
        "zero-window": ({f"{criteria}__timeWindow": "0s"}, "timeWindow must be from 1s to 400d"),
        "long-block": ({f"{params}": {"blockDuration": "401d"}}, "durations from 1s to 400d"),
        "typo-param": ({f"{params}": {"cooldownperiod": "30m"}}, "no strategy reads"),
        "escalate-zero": ({f"{params}": {"escalateAfter": "0"}}, "escalateAfter must be a whole number"),
        "typo-threshold": ({f"{criteria}__thresholds": {"directionChange": 2}}, "does not read"),
        "foreign-threshold": ({f"{criteria}__thresholds": {"revertWindowMinutes": 5}}, "does not read"),
        "zero-count": ({f"{criteria}__thresholds": {"directionChanges": 0}}, "from 1 to 10000"),
        "minutes": ({f"{criteria}__thresholds": {"criticalWindowMinutes": 10**7}}, "at most 576000"),
        "occurrences": ({f"{criteria}__minOccurrences": 10**6}, "10000"),
    }
    for name, (changes, words) in refused.items():
        res = server_dry_run(cluster, pattern(f"refused-{name}", **changes))
        assert res.returncode != 0, f"{name} was accepted"
        assert words in res.stderr, (name, res.stderr)
    ineffective = pattern("ineffective", spec__patternDefinition__patternType="ineffective-loop",
                          **{f"{criteria}__thresholds": {"effectivenessThreshold": 1.5}})
    res = server_dry_run(cluster, ineffective)
    assert res.returncode != 0 and "effectivenessThreshold must be from 0 to 1" in res.stderr


def permissive_crd() -> dict[str, Any]:
    """The OscillationPattern CRD as an older chart shipped it: the same shape without the value rules."""
    (crd,) = [d for d in load_yaml_documents(CRD_FILE) if d.get("kind") == "CustomResourceDefinition"]
    crd = copy.deepcopy(crd)

    def strip(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("x-kubernetes-validations", "maximum", "maxLength", "maxProperties"):
                node.pop(key, None)
            if node.get("pattern", "").startswith("^[0-9]{1,8}"):
                node["pattern"] = "^[0-9]+(s|m|h|d)$"
            for value in node.values():
                strip(value)
        elif isinstance(node, list):
            for value in node:
                strip(value)

    strip(crd["spec"]["versions"])
    return crd


def replace_crd(cluster: ControlPlane, crd: dict[str, Any]) -> None:
    cluster.kubectl("replace", "-f", "-", input=yaml.safe_dump(crd), check=True)
    cluster.wait_crd_ready(crd)


def accepted(cluster: ControlPlane, name: str) -> dict[str, Any] | None:
    obj = cluster.kubectl_json("get", "oscillationpattern", name)
    for found in (obj.get("status") or {}).get("conditions") or []:
        if found.get("type") == "Accepted" and found.get("observedGeneration") == obj["metadata"]["generation"]:
            return found
    return None


def warning_events(cluster: ControlPlane, name: str) -> list[dict[str, Any]]:
    listing = cluster.kubectl_json("get", "events", "--namespace=default",
                                   f"--field-selector=involvedObject.name={name},involvedObject.kind=OscillationPattern")
    return [e for e in listing["items"] if e.get("type") == "Warning" and e.get("reason") == "InvalidPolicy"]


@pytest.fixture
def old_crd(cluster: ControlPlane):
    (current,) = [d for d in load_yaml_documents(CRD_FILE) if d.get("kind") == "CustomResourceDefinition"]
    replace_crd(cluster, permissive_crd())
    try:
        yield
    finally:
        replace_crd(cluster, current)


def test_an_invalid_object_keeps_the_last_valid_policy_in_force_and_says_why(cluster: ControlPlane, gate,
                                                                             namespace: str, old_crd):
    agent = agent_of(cluster, namespace)
    cluster.apply(deployment("cart", namespace, replicas=1))
    assert scale(cluster, namespace, 3, as_user=agent).returncode == 0
    assert scale(cluster, namespace, 1, as_user=agent).returncode == 0
    name = f"keep-{namespace}"[:63]
    fresh = f"new-{namespace}"[:63]
    policy = scale_policy(name, namespace=namespace, cooldown="30m", enforcement="warn")
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(policy), check=True)
    try:
        def warned():
            res = scale(cluster, namespace, 3, as_user=agent, dry_run=True)
            return res if res.returncode == 0 and "Warning: safety-gate" in res.stderr else None
        wait_for(warned, timeout=30, interval=0.2, description="the warn policy in force")
        valid = wait_for(lambda: accepted(cluster, name), timeout=30, interval=0.2, description="Accepted=True")
        assert (valid["status"], valid["reason"]) == ("True", "Valid")

        # A bad edit the old CRD lets through: the warn policy stays in force, not the enforcing default.
        broken = copy.deepcopy(policy)
        broken["spec"]["preventionStrategy"]["parameters"]["escalateWindow"] = "1 day"
        broken["spec"]["patternDefinition"]["detectionCriteria"]["timeWindow"] = "999999d"
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(broken), check=True)

        def refused_condition():
            found = accepted(cluster, name)
            return found if found is not None and found["status"] == "False" else None
        condition = wait_for(refused_condition, timeout=30, interval=0.2, description="Accepted=False")
        assert condition["reason"] == "Invalid"
        assert "its last valid version stays in force" in condition["message"]
        assert "spec.preventionStrategy.parameters.escalateWindow: invalid duration '1 day'" in condition["message"]
        assert "spec.patternDefinition.detectionCriteria.timeWindow: '999999d' is out of range" in condition["message"]
        events = wait_for(lambda: warning_events(cluster, name), timeout=30, interval=0.2,
                          description="the InvalidPolicy Event")
        assert len(events) == 1 and "escalateWindow" in events[0]["message"]
        for _ in range(3):  # decided by the last valid version: warned, never unchecked, never the default
            res = scale(cluster, namespace, 3, as_user=agent, dry_run=True)
            assert res.returncode == 0 and "Warning: safety-gate: would deny: scale-oscillation" in res.stderr, \
                res.stderr
            assert "unchecked" not in res.stderr
        # The accepted version is recorded on the object: a gate restarted meanwhile keeps it in force too.
        recorded = json.loads(cluster.kubectl_json("get", "oscillationpattern", name)["status"]["acceptedSpec"])
        assert recorded["enforcementAction"] == "warn"
        assert recorded["preventionStrategy"]["parameters"] == {"cooldownPeriod": "30m"}
        gate.stop()
        gate.start()
        gate.wait_gating()
        wait_for(warned, timeout=60, interval=0.3, description="the last valid version in force after a restart")
        for _ in range(3):
            res = scale(cluster, namespace, 3, as_user=agent, dry_run=True)
            assert res.returncode == 0 and "would deny: scale-oscillation" in res.stderr, res.stderr

        # A new bad object changes nothing either: an enforcing policy that would refuse is not applied.
        new = scale_policy(fresh, namespace=namespace, cooldown="30m", enforcement="enforce")
        new["spec"]["preventionStrategy"]["parameters"]["escalateAfter"] = "zero"
        new["metadata"]["name"] = "a-" + fresh  # sorts first: it would win if it were applied
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(new), check=True)
        fresh = new["metadata"]["name"]
        condition = wait_for(lambda: accepted(cluster, fresh), timeout=30, interval=0.2,
                             description="the new object's condition")
        assert condition["status"] == "False" and "the other policies stay in force" in condition["message"]
        assert "spec.preventionStrategy.parameters.escalateAfter: must be a whole number" in condition["message"]
        res = scale(cluster, namespace, 3, as_user=agent, dry_run=True)
        assert res.returncode == 0 and "would deny" in res.stderr, res.stderr

        # Fixed: accepted again, and the fix is what decides.
        fixed = copy.deepcopy(policy)
        fixed["spec"]["enforcementAction"] = "enforce"
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(fixed), check=True)

        def enforced():
            res = scale(cluster, namespace, 3, as_user=agent, dry_run=True)
            return res if res.returncode != 0 else None
        res = wait_for(enforced, timeout=30, interval=0.2, description="the fixed policy in force")
        assert "safety-gate: scale-oscillation" in res.stderr
        again = wait_for(refused_condition_cleared(cluster, name), timeout=30, interval=0.2,
                         description="Accepted=True after the fix")
        assert again["reason"] == "Valid"
        assert "its last valid version" not in json.dumps(again)
    finally:
        cluster.kubectl("delete", "oscillationpattern", name, fresh, "--ignore-not-found", check=True)


def refused_condition_cleared(cluster: ControlPlane, name: str):
    def check():
        found = accepted(cluster, name)
        return found if found is not None and found["status"] == "True" else None
    return check
