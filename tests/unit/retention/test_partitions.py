from __future__ import annotations

import datetime

from webhook.retention.partitions import (
    add_months,
    months_to_create,
    partition_month,
    partition_name,
    partitions_to_drop,
)

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 21, 21, 0, tzinfo=UTC)


def test_names_and_months() -> None:
    assert partition_name(NOW) == "resource_action_traces_2026_11"
    assert partition_month("resource_action_traces_2026_01") == datetime.datetime(2026, 1, 1, tzinfo=UTC)
    assert partition_month("resource_action_traces_default") is None
    assert partition_month("resource_action_traces_2026_13") is None
    assert add_months(datetime.datetime(2026, 11, 1, tzinfo=UTC), 2) == datetime.datetime(2027, 1, 1, tzinfo=UTC)
    assert add_months(datetime.datetime(2026, 1, 1, tzinfo=UTC), -1) == datetime.datetime(2025, 12, 1, tzinfo=UTC)


def test_creates_current_month_and_two_ahead() -> None:
    assert [partition_name(m) for m in months_to_create(NOW)] == [
        "resource_action_traces_2026_11", "resource_action_traces_2026_12", "resource_action_traces_2027_01"]


def test_drops_only_months_entirely_before_the_cutoff() -> None:
    names = [f"resource_action_traces_2026_{m:02d}" for m in range(6, 13)] + ["something_else"]
    # cutoff 90 days before NOW: 2026-08-23 21:00 — June and July end before it, August does not.
    assert partitions_to_drop(names, now=NOW, max_age=datetime.timedelta(days=90)) == [
        "resource_action_traces_2026_06", "resource_action_traces_2026_07"]
    # A cutoff exactly at a month boundary drops the month that ends there.
    at_boundary = datetime.datetime(2026, 8, 1, tzinfo=UTC) + datetime.timedelta(days=90)
    assert partitions_to_drop(names, now=at_boundary, max_age=datetime.timedelta(days=90))[-1] == \
        "resource_action_traces_2026_07"
