"""Pure decisions: findings, restrictions and approvals in; an admission verdict and its effects out."""

from webhook.decision.decide import AlertUpdate, Decision, Outcome, Phase, decide, prepare
from webhook.decision.state import Approval, GateState, Restriction

__all__ = ["AlertUpdate", "Approval", "Decision", "GateState", "Outcome", "Phase", "Restriction", "decide",
           "prepare"]
