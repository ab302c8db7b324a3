"""What an overloaded replica answers, by actor class (DESIGN §7). Pure: no I/O.

Automation is refused with 429 and a retry hint: its change is retried by the client (client-go
honours ``Retry-After``) and decided then, so overload never admits an automation change the
same requests in sequence would refuse. People and observed actors are admitted — the gate must
never take a cluster down, and observed actors are never refused in any mode — and their
actions are recorded like any other, so later decisions still see them.
"""

from __future__ import annotations

from typing import Any

from webhook.actions.model import ActionEvent, ActorClass
from webhook.admission import responses
from webhook.decision.decide import Decision, Outcome

RETRY_AFTER_SECONDS = 1


def refusal(uid: str, *, limit: str) -> dict[str, Any]:
    """The 429 review for an automation actor; ``limit`` names the limit reached."""
    return responses.denied(
        uid, code=429, retry_after=RETRY_AFTER_SECONDS,
        message=f"safety-gate: overloaded ({limit} reached); the change was not checked and is not admitted: "
                f"retry in {RETRY_AFTER_SECONDS}s",
    )


def admitted(event: ActionEvent, *, limit: str) -> Decision:
    """A person's or observed actor's change admitted without reading history, and recorded.

    For an observed actor this is exactly what a full decision would say (they are recorded and
    never judged). A person loses only the advice a full decision might have given, and is told so.
    """
    if event.actor_class is ActorClass.AUTOMATION:
        raise ValueError("automation is refused when overloaded, never admitted unchecked")
    if event.actor_class is ActorClass.OBSERVED:
        return Decision(outcome=Outcome.ALLOW, event=event)
    return Decision(outcome=Outcome.FAIL_OPEN, event=event,
                    warnings=(f"safety-gate: overloaded ({limit}); allowed and recorded without checking history",))
