"""controller-fight: an actor keeps re-applying a replica count another controller undoes (DESIGN §4).

Typical case: an agent scales 3→5, the HPA moves it back 5→3 minutes later, and the agent
proposes 3→5 again. Neither side will win; the fix is to change the HPA's bounds, so the
finding names the other actor (``counterpart``).

Over the target's replica changes in the window (oldest first), find the most recent adjacent
pair (A, B) such that

* A is by the proposing actor and B by a different actor,
* B directly follows A (no other replica change between them) and
  B.at − A.at ≤ ``revertWindowMinutes`` (10),
* B's direction is opposite to A's (B moved it back);

then the pattern is triggered when the proposed change is a replica change whose direction is
opposite to B's (it moves it again). Only that most recent pair is considered: an older fight
the proposed change does not continue is not this one. Severity HIGH. There is no near miss.
Confidence: 1 − ½ × (B.at − A.at) / revertWindow, in [0.5, 1]: a revert seconds after the change
is almost certainly a controller reacting; one near the edge of the window may be coincidence.
"""

from __future__ import annotations

import datetime
import itertools

from webhook.actions.model import ActionEvent
from webhook.detection import _history, _wording
from webhook.detection.situation import Finding, Severity, Situation
from webhook.policy.model import PatternType
from webhook.policy.resolved import PatternPolicy

PATTERN = PatternType.CONTROLLER_FIGHT


def detect(situation: Situation, policy: PatternPolicy) -> Finding | None:
    proposed = situation.proposed
    if not proposed.is_scale:
        return None
    revert_window = datetime.timedelta(minutes=policy.threshold("revertWindowMinutes", 10))
    changes = [event for event in _history.target_events(situation, policy) if event.is_scale]
    pair = _last_revert(changes, actor=proposed.actor, revert_window=revert_window)
    if pair is None:
        return None
    mine, theirs = pair
    if proposed.replica_direction != -theirs.replica_direction:
        return None

    delay = theirs.at - mine.at
    confidence = 1.0 if not revert_window else 1.0 - 0.5 * min(1.0, delay / revert_window)
    return Finding(
        pattern=PATTERN,
        policy=policy,
        triggered=True,
        severity=Severity.HIGH,
        confidence=confidence,
        evidence=(mine, theirs, proposed),
        summary=(
            f"{theirs.actor} moved replicas back {theirs.replicas_before}→{theirs.replicas_after} "
            f"{_wording.span(mine.at, theirs.at)} after your change {mine.replicas_before}→{mine.replicas_after}"
        ),
        counterpart=theirs.actor,
    )


def _last_revert(
    changes: list[ActionEvent], *, actor: str, revert_window: datetime.timedelta,
) -> tuple[ActionEvent, ActionEvent] | None:
    for mine, theirs in reversed(list(itertools.pairwise(changes))):
        if (
            mine.actor == actor
            and theirs.actor != actor
            and datetime.timedelta(0) <= theirs.at - mine.at <= revert_window
            and theirs.replica_direction == -mine.replica_direction
        ):
            return mine, theirs
    return None
