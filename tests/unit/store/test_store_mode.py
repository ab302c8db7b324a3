"""The store mode and the gaps it gives decisions: two types, one spelling."""

from __future__ import annotations

from webhook.store.errors import Gap, StoreMode


def test_every_degraded_mode_is_the_gap_of_the_decisions_taken_in_it():
    assert StoreMode.HEALTHY.gap is None
    gaps = {mode: mode.gap for mode in StoreMode if mode is not StoreMode.HEALTHY}
    assert all(gap is not None and gap.value == mode.value for mode, gap in gaps.items())
    # A busy lock and a failure of the gate itself are gaps of one decision, never modes of the stores.
    assert set(Gap) - set(gaps.values()) == {Gap.LOCK_BUSY, Gap.GATE_ERROR}
    assert [gap for gap in gaps.values() if gap.incomplete] == [Gap.COLD_CACHE, Gap.UNAVAILABLE]
