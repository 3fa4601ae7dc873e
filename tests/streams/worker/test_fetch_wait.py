"""The fetch wait governor's rule: raised only after `patience` starved checks in a row, never past its ceiling."""

from __future__ import annotations

from streams.worker.fetch_wait import FetchWaitGovernor


def starve(governor: FetchWaitGovernor, checks: int, read: int = 0) -> list[int]:
    raised = []
    for _ in range(checks):
        new = governor.observe(records_read=read, waiting=10_000, busy=False)
        if new is not None:
            raised.append(new)
    return raised


def test_the_wait_rises_fourfold_per_starved_spell_up_to_the_ceiling() -> None:
    governor = FetchWaitGovernor(wait_ms=10)
    assert starve(governor, 1 + 3 * 5) == [40, 160, 640, 1500]  # the first check only sets the baseline
    assert governor.wait_ms == 1500


def test_one_good_check_resets_the_count() -> None:
    governor = FetchWaitGovernor(wait_ms=10)
    assert starve(governor, 3) == []  # baseline + 2 starved
    assert governor.observe(records_read=20_000, waiting=10_000, busy=False) is None  # read more than waits
    assert starve(governor, 2, read=20_000) == []
    assert starve(governor, 1, read=20_000) == [40]


def test_a_live_worker_reading_more_than_waits_or_a_busy_one_is_never_raised() -> None:
    governor = FetchWaitGovernor(wait_ms=10)
    for check in range(100):
        assert governor.observe(records_read=400 * check, waiting=300, busy=False) is None
        assert governor.observe(records_read=400 * check, waiting=50_000, busy=True) is None
    assert governor.wait_ms == 10
