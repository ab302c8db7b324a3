"""Who is asking: observed controllers, automation, or people (DESIGN §3)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from webhook.actions.model import ActorClass

DEFAULT_OBSERVED_USERS = (
    "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
    # The HPA (and every other controller) writes as this user when kube-controller-manager
    # runs without --use-service-account-credentials.
    "system:kube-controller-manager",
    "system:serviceaccount:keda:keda-operator",
)
DEFAULT_OBSERVED_GROUPS = ("system:masters",)


@dataclasses.dataclass(frozen=True)
class ActorRules:
    observed_users: tuple[str, ...] = DEFAULT_OBSERVED_USERS
    observed_groups: tuple[str, ...] = DEFAULT_OBSERVED_GROUPS
    bypass_subjects: tuple[str, ...] = ()

    def classify(self, username: str, groups: Sequence[str]) -> ActorClass:
        if username in self.observed_users or any(group in self.observed_groups for group in groups):
            return ActorClass.OBSERVED
        if username.startswith("system:serviceaccount:"):
            return ActorClass.AUTOMATION
        return ActorClass.PERSON

    def may_bypass(self, username: str, groups: Sequence[str]) -> bool:
        """A subject is a username, or ``group:NAME`` for every member of a group."""
        subjects = set(self.bypass_subjects)
        return username in subjects or any(f"group:{group}" in subjects for group in groups)
