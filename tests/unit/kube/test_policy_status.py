"""What the gate writes on an OscillationPattern it judged: the Accepted condition and the Event."""

from __future__ import annotations

import datetime
import json

from webhook.kube.policies import condition, judge, last_accepted, rejection_event, status_patch

NOW = datetime.datetime(2026, 12, 1, 8, 0, tzinfo=datetime.timezone.utc)


def pattern(*, generation: int = 3, **parameters: str) -> dict:
    return {"apiVersion": "ai.prometheus-alerts-slm.io/v1", "kind": "OscillationPattern",
            "metadata": {"name": "shop-scale", "generation": generation, "uid": "u-1", "resourceVersion": "9"},
            "spec": {"patternDefinition": {"patternType": "scale-oscillation",
                                           "detectionCriteria": {"minOccurrences": 3, "timeWindow": "2h"}},
                     "preventionStrategy": {"strategy": "cooling-period", "parameters": parameters}}}


def test_a_valid_object_is_accepted_for_its_generation():
    judgement = judge(pattern(cooldownPeriod="10m"))
    assert judgement.accepted and judgement.policy is not None
    found = condition(judgement, kept=None, now=NOW)
    assert found == {"type": "Accepted", "status": "True", "reason": "Valid", "message": "valid: in force",
                     "lastTransitionTime": "2026-12-01T08:00:00Z", "observedGeneration": 3}


def test_an_invalid_object_names_every_field_and_what_stays_in_force():
    judgement = judge(pattern(escalateWindow="1 day", blockDuration="999999d"))
    assert not judgement.accepted
    kept = judge(pattern(cooldownPeriod="10m")).policy
    found = condition(judgement, kept=kept, now=NOW)
    assert (found["status"], found["reason"]) == ("False", "Invalid")
    assert found["message"].startswith("not applied (its last valid version stays in force): ")
    assert "spec.preventionStrategy.parameters.escalateWindow: invalid duration '1 day'" in found["message"]
    assert "spec.preventionStrategy.parameters.blockDuration: '999999d' is out of range" in found["message"]
    assert "the other policies stay in force" in condition(judgement, kept=None, now=NOW)["message"]
    model_error = judge({**pattern(), "spec": {"enforcementAction": "sometimes"}})
    assert not model_error.accepted and "spec.enforcementAction" in (model_error.problems or "")


def test_the_condition_is_written_only_when_it_changes():
    obj = pattern(cooldownPeriod="10m")
    wanted = condition(judge(obj), kept=None, now=NOW)
    patch = status_patch(obj, wanted)
    assert patch == {"status": {"conditions": [wanted], "acceptedSpec": json.dumps(obj["spec"], sort_keys=True,
                                                                                   separators=(",", ":"))}}
    # The watch event the write causes (another replica, a later time) writes nothing more.
    obj["status"] = {"conditions": [{"type": "Ready", "status": "True"}, wanted],
                     "acceptedSpec": patch["status"]["acceptedSpec"]}
    later = condition(judge(obj), kept=None, now=NOW + datetime.timedelta(minutes=5))
    assert status_patch(obj, later) is None
    # A new generation is written, keeping the transition time while the status holds, and other conditions.
    obj["metadata"]["generation"] = 4
    again = status_patch(obj, condition(judge(obj), kept=None, now=NOW + datetime.timedelta(minutes=5)))
    assert again is not None
    ready, accepted = again["status"]["conditions"]
    assert ready == {"type": "Ready", "status": "True"}
    assert accepted["observedGeneration"] == 4 and accepted["lastTransitionTime"] == "2026-12-01T08:00:00Z"
    broken = pattern(generation=5, escalateAfter="zero")
    broken["status"] = obj["status"]
    flipped = status_patch(broken, condition(judge(broken), kept=None, now=NOW + datetime.timedelta(minutes=9)))
    assert flipped is not None and flipped["status"]["conditions"][1]["lastTransitionTime"] == "2026-12-01T08:09:00Z"
    assert "acceptedSpec" not in flipped["status"]  # a refused version never replaces the accepted one


def test_the_last_accepted_version_is_read_back_from_the_status():
    good = pattern(cooldownPeriod="10m")
    recorded = status_patch(good, condition(judge(good), kept=None, now=NOW))["status"]
    broken = pattern(generation=4, escalateWindow="1 day")
    assert last_accepted(broken) is None
    broken["status"] = recorded
    kept = last_accepted(broken)
    assert kept is not None and kept.duration("cooldownPeriod", "30m") == datetime.timedelta(minutes=10)
    broken["status"] = {**recorded, "acceptedSpec": "{not json"}
    assert last_accepted(broken) is None


def test_one_event_name_per_bad_version_so_replicas_do_not_repeat_it():
    obj = pattern(escalateAfter="zero")
    wanted = condition(judge(obj), kept=None, now=NOW)
    event = rejection_event(obj, wanted, now=NOW)
    assert event["type"] == "Warning" and event["reason"] == "InvalidPolicy"
    assert event["metadata"]["namespace"] == "default" and event["involvedObject"]["kind"] == "OscillationPattern"
    assert "escalateAfter" in event["message"]
    assert rejection_event(obj, wanted, now=NOW + datetime.timedelta(seconds=3))["metadata"]["name"] == \
        event["metadata"]["name"]
    newer = pattern(generation=4, escalateAfter="zero")
    assert rejection_event(newer, wanted, now=NOW)["metadata"]["name"] != event["metadata"]["name"]
