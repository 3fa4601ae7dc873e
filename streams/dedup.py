"""Exactly-once effects: decide which events of a batch are new, already applied, or too old to tell.

Each customer's applied event ids live in Redis (`seen:{customer}`, a sorted set scored by event time)
written in the same transaction as the state they changed, so "applied" and "remembered" can never
disagree, across restarts and replays alike. The set keeps the `window` most recent event ids per
customer. Once it is full, an unknown event older than its oldest remembered id might have been applied
and forgotten: rather than risk counting it twice it goes to the dead-letter topic
(`outside_dedup_window`), where an operator can see it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from schemas.events import CustomerEvent

OUTSIDE_WINDOW = "outside_dedup_window"
T = TypeVar("T")


@dataclass(frozen=True)
class SeenWindow:
    """What Redis remembers for one customer: the ids among those asked about, and the window's floor."""

    seen: frozenset[str] = frozenset()
    size: int = 0
    oldest_ts: float | None = None

    def floor(self, window: int) -> float | None:
        """Event time at or below which an unknown id cannot be told apart from a forgotten one."""
        return self.oldest_ts if self.size >= window else None


@dataclass
class Triage(Generic[T]):
    fresh: list[tuple[T, CustomerEvent]] = field(default_factory=list)
    duplicates: int = 0
    outside_window: list[tuple[T, CustomerEvent]] = field(default_factory=list)


def triage(events: Sequence[tuple[T, CustomerEvent]], windows: dict[str, SeenWindow],
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
