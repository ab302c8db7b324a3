"""What truthful history needs to know about an admitted change before the cluster confirms it.

Admission runs before the API server stores anything: a change the gate admitted may still be
refused by another webhook, by the storage layer (409 AlreadyExists) or by a failed conversion,
and a patch retried on conflict is admitted twice for one change. So an admitted change is
recorded as ``PROPOSED``; the watch on the gated kinds confirms it, and what never lands within
the confirmation window is ``NOT_APPLIED`` and counts toward nothing (DESIGN §7).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from typing import Any

#: How long a proposal counts without being confirmed: long enough for the API server to store
#: the object and the watch to deliver it, short enough that a forged review stops counting soon.
CONFIRMATION_WINDOW = datetime.timedelta(seconds=10)


class ActionStatus(str, enum.Enum):
    PROPOSED = "proposed"        # admitted; not yet seen in the cluster (counts while young)
    CONFIRMED = "confirmed"      # seen in the cluster: it happened
    NOT_APPLIED = "not-applied"  # never landed: counts toward nothing
    RECORDED = "recorded"        # no cluster to confirm against (or PostgreSQL was down): counts


class Operation(str, enum.Enum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"


@dataclasses.dataclass(frozen=True, slots=True)
class Subject:
    """The object an admission would change: a workload, or the PipelineRun being created.

    ``name`` ends with ``*`` for a creation by ``generateName`` (only the prefix is known yet).
    """

    kind: str
    namespace: str
    name: str

    def matches(self, name: str) -> bool:
        return name.startswith(self.name[:-1]) if self.name.endswith("*") else name == self.name


@dataclasses.dataclass(frozen=True, slots=True)
class Proposed:
    """One admitted review waiting for the cluster to show whether its change landed."""

    uid: str
    at: datetime.datetime
    operation: Operation
    subject: Subject
    change: dict[str, Any]          # {"replicas": 5, "resources": {...}, "images": {...}} or {"create": True}
    actor: str
    target_key: str | None = None
    old_version: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Resolution:
    """What a watch event or the expiry sweep decided about one proposal."""

    uid: str
    status: ActionStatus
    reason: str
    object_uid: str | None = None
    observed_version: str | None = None
