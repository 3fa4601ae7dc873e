from schemas import parse_event
from streams.storage.repository import SeenWindow
from streams.worker.dedup import OUTSIDE_WINDOW, triage
from tests.helpers import click, later, raw


def event(event_id: str, minutes: int, customer: str = "c1"):  # type: ignore[no-untyped-def]
    body = click(customer=customer, at=later(minutes=minutes))
    body["event_id"] = event_id
    return parse_event("clickstream", raw(body))


def test_remembered_ids_and_repeats_inside_the_batch_are_duplicates() -> None:
    batch = [(n, event(eid, n)) for n, eid in enumerate(["a", "b", "a", "c", "c"])]
    result = triage(batch, {"c1": SeenWindow(seen=frozenset({"b"}), size=1, oldest_ts=0.0)}, window=10)
    assert [e.event_id for _, e in result.fresh] == ["a", "c"]
    assert [source for source, _ in result.fresh] == [0, 3]  # the first copy wins, order kept
    assert result.duplicates == 3
    assert result.outside_window == []


def test_unknown_event_older_than_a_full_window_is_not_guessed() -> None:
    oldest = later(minutes=10).timestamp()
    full = SeenWindow(seen=frozenset(), size=5, oldest_ts=oldest)
    batch = [(0, event("old", 9)), (1, event("same-time", 10)), (2, event("new", 11))]
    result = triage(batch, {"c1": full}, window=5)
    assert [e.event_id for _, e in result.outside_window] == ["old", "same-time"]
    assert [e.event_id for _, e in result.fresh] == ["new"]
    assert OUTSIDE_WINDOW == "outside_dedup_window"


def test_a_window_not_yet_full_accepts_old_events() -> None:
    partly = SeenWindow(seen=frozenset(), size=4, oldest_ts=later(minutes=10).timestamp())
    result = triage([(0, event("old", 1))], {"c1": partly}, window=5)
    assert len(result.fresh) == 1


def test_customers_are_judged_by_their_own_window() -> None:
    windows = {"c1": SeenWindow(seen=frozenset({"x"}), size=1, oldest_ts=0.0)}
    result = triage([(0, event("x", 1, "c1")), (1, event("x2", 1, "c2"))], windows, window=10)
    assert [e.customer_id for _, e in result.fresh] == ["c2"]
