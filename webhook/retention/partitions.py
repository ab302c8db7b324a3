"""Monthly partitions of ``resource_action_traces``: which to create ahead, which to drop.

Pure month arithmetic on names of the form ``resource_action_traces_YYYY_MM`` (the names
``sg_ensure_partition`` gives them, months in UTC). A partition is dropped only when it lies
*entirely* before the age cutoff — its month ends at or before ``now - maxAge`` — so no row
young enough to keep is ever in a dropped table.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable

PARENT = "resource_action_traces"
_NAME = re.compile(rf"^{PARENT}_(\d{{4}})_(\d{{2}})$")
MONTHS_AHEAD = 2


def month_start(moment: datetime.datetime) -> datetime.datetime:
    moment = moment.astimezone(datetime.timezone.utc)
    return datetime.datetime(moment.year, moment.month, 1, tzinfo=datetime.timezone.utc)


def add_months(start: datetime.datetime, months: int) -> datetime.datetime:
    index = start.year * 12 + (start.month - 1) + months
    return datetime.datetime(index // 12, index % 12 + 1, 1, tzinfo=datetime.timezone.utc)


def partition_name(moment: datetime.datetime) -> str:
    start = month_start(moment)
    return f"{PARENT}_{start.year:04d}_{start.month:02d}"


def partition_month(name: str) -> datetime.datetime | None:
    """The first instant of the partition's month, or None for a name that is not ours."""
    match = _NAME.match(name)
    if not match:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12:
        return None
    return datetime.datetime(year, month, 1, tzinfo=datetime.timezone.utc)


def months_to_create(now: datetime.datetime, *, ahead: int = MONTHS_AHEAD) -> list[datetime.datetime]:
    """The current month and ``ahead`` more: a month's first insert never waits for DDL."""
    start = month_start(now)
    return [add_months(start, offset) for offset in range(ahead + 1)]


def partitions_to_drop(names: Iterable[str], *, now: datetime.datetime, max_age: datetime.timedelta) -> list[str]:
    """Our partitions whose whole month is older than ``now - max_age``, oldest first."""
    cutoff = now - max_age
    doomed = []
    for name in names:
        start = partition_month(name)
        if start is not None and add_months(start, 1) <= cutoff:
            doomed.append((start, name))
    return [name for _, name in sorted(doomed)]
