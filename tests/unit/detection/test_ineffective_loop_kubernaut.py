"""ineffective-loop for Kubernaut's loops: the same workflow, or the same action type, repeated
unassessed on one target counts as ineffective, although its PipelineRuns carry no alert name."""

from __future__ import annotations

from webhook.detection import ineffective_loop
from webhook.policy.model import PatternType

from .factories import HPA, action, policy, situation, uids

POLICY = policy(PatternType.INEFFECTIVE_LOOP)
KUBERNAUT = "system:serviceaccount:kubernaut-system:workflowexecution-controller"
RESTART_WORKFLOW = "3f1b6c2e-8d4a-4f7e-9a51-2c6d0e9b7a10"
OTHER_WORKFLOW = "9c0d7e55-1b2a-4c3d-8e9f-0a1b2c3d4e5f"


def detect(proposed, *history):
    return ineffective_loop.detect(situation(proposed, history), POLICY)


def run(at=0, *, workflow=RESTART_WORKFLOW, action_type=None, score=None, alert=None):
    """A Kubernaut PipelineRun: without its WorkflowExecution the workflow id is the action type too."""
    return action(action_type or workflow, at=at, actor=KUBERNAUT, remediation=workflow, effectiveness=score,
                  alert_name=alert)


def test_the_same_workflow_run_a_fourth_time_unassessed_is_escalated():
    history = [run(-90), run(-60), run(-30)]
    finding = detect(run(), *history)
    assert finding is not None and finding.triggered
    assert uids(finding.evidence) == uids([*history, finding.evidence[-1]])
    assert finding.summary == f"3 earlier {RESTART_WORKFLOW} actions in 1h30m without effect"


def test_the_third_run_is_a_near_miss_and_the_second_nothing():
    near = detect(run(), run(-60), run(-30))
    assert near is not None and not near.triggered
    assert detect(run(), run(-30)) is None


def test_the_same_action_type_by_different_workflows_counts_and_names_them():
    history = [run(-90, workflow=RESTART_WORKFLOW, action_type="RestartPod"),
               run(-60, workflow=OTHER_WORKFLOW, action_type="RestartPod"),
               run(-30, workflow=RESTART_WORKFLOW, action_type="RestartPod")]
    finding = detect(run(workflow=OTHER_WORKFLOW, action_type="RestartPod"), *history)
    assert finding is not None and finding.triggered
    assert f"workflows {RESTART_WORKFLOW}, {OTHER_WORKFLOW}" in finding.summary


def test_the_same_workflow_under_a_changed_action_type_still_counts():
    # One workflow whose action type became known only later (its WorkflowExecution was readable).
    history = [run(-90), run(-60, action_type="RestartPod"), run(-30)]
    finding = detect(run(action_type="RestartPod"), *history)
    assert finding is not None and finding.triggered


def test_an_assessed_success_resets_and_an_assessed_failure_counts():
    assert detect(run(), run(-90), run(-60, score=0.8), run(-30)) is None
    finding = detect(run(), run(-90, score=0.1), run(-60), run(-30))
    assert finding is not None and finding.triggered
    assert "scores 0.1, unassessed, unassessed" in finding.summary


def test_a_repeat_by_someone_else_is_no_evidence_against_the_remediation():
    # A person's (or the HPA's) change of the same type after a run carries no remediation: it
    # does not show the run failed, so only the runs before the last one can count.
    history = [run(-90), run(-60), action(RESTART_WORKFLOW, at=-45, actor=HPA), run(-30)]
    finding = detect(run(), *history)
    assert finding is not None and finding.triggered  # the runs themselves still follow each other
    lone = detect(action(RESTART_WORKFLOW), action(RESTART_WORKFLOW, at=-60), action(RESTART_WORKFLOW, at=-30))
    assert lone is None  # no remediation, no alert: undecided, as before


def test_the_signal_name_read_from_the_remediation_request_counts_as_before():
    history = [run(-90, alert="KubePodCrashLooping"), run(-60, alert="KubePodCrashLooping"),
               run(-30, alert="KubePodCrashLooping")]
    finding = detect(run(alert="KubePodCrashLooping"), *history)
    assert finding is not None and finding.triggered
    assert "alert KubePodCrashLooping" in finding.summary
