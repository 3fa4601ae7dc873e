"""Exactly-once effects: decide which events of a batch are new, already applied, or too old to tell.

Each customer's applied event ids live in Redis (`seen:{customer}`, a sorted set scored by event time)
written in the same transaction as the state they changed, so "applied" and "remembered" can never
disagree, across restarts and replays alike. The set keeps the `window` most recent event ids per
customer. Once it is full, an unknown event older than its oldest remembered id might have been applied
and forgotten: rather than risk counting it twice it goes to the dead-letter topic
(`outside_dedup_window`), where an operator can see it.

>>> from schemas.events import parse_event
>>> def view(event_id: str, ts: str) -> InputEvent:
...     return parse_event("clickstream", ('{"event_id": "%s", "type": "search", "customer_id": "c1", '
...         '"session_id": "s1", "ts": "%s", "query": "tea"}' % (event_id, ts)).encode())
>>> events = [("r1", view("e1", "2026-01-05T12:00:00Z")), ("r2", view("e2", "2026-01-05T12:01:00Z")),
...           ("r3", view("e2", "2026-01-05T12:01:00Z")), ("r4", view("e0", "2026-01-01T00:00:00Z"))]
>>> remembered = {"c1": SeenWindow(frozenset({"e1"}), size=2, oldest_ts=1767571200.0)}
>>> result = triage(events, remembered, window=2)
>>> [source for source, _ in result.fresh], result.duplicates, [source for source, _ in result.outside_window]
(['r2'], 2, ['r4'])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from schemas.events import InputEvent
from streams.storage.repository import SeenWindow

OUTSIDE_WINDOW = "outside_dedup_window"
T = TypeVar("T")


@dataclass
class Triage(Generic[T]):
    fresh: list[tuple[T, InputEvent]] = field(default_factory=list)
    duplicates: int = 0
    outside_window: list[tuple[T, InputEvent]] = field(default_factory=list)


def triage(events: Sequence[tuple[T, InputEvent]], windows: dict[str, SeenWindow],
           window: int) -> Triage[T]:
    """Split validated events (each with its source record) in batch order; repeats inside the batch count too."""
    result: Triage[T] = Triage()
    in_batch: set[str] = set()
    for source, event in events:
        remembered = windows.get(event.customer_id, SeenWindow())
        if event.event_id in remembered.seen or event.event_id in in_batch:
            result.duplicates += 1
            continue
        floor = remembered.floor(window)
        if floor is not None and event.epoch <= floor:
            result.outside_window.append((source, event))
            continue
        in_batch.add(event.event_id)
        result.fresh.append((source, event))
    return result
