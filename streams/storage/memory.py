"""Customer storage in process memory, with the Redis store's semantics (states, profiles, a bounded window of
applied event ids per customer): for in-process tests of the pipeline and for simulations without services.

>>> import asyncio
>>> store = InMemoryCustomerStore(dedup_window=2)
>>> asyncio.run(store.load([], {"c1": ["e1"]}))
({}, {'c1': SeenWindow(seen=frozenset(), size=0, oldest_ts=None)})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from models.experiments.attribution import Tallies, merge
from models.state import CustomerState
from streams.storage.repository import CustomerUpdate, SeenWindow


class InMemoryCustomerStore:
    def __init__(self, dedup_window: int = 10_000) -> None:
        self.dedup_window = dedup_window
        self.states: dict[str, dict[str, object]] = {}
        self.profiles: dict[str, dict[str, str]] = {}
        self.seen: dict[str, dict[str, float]] = {}
        self.wakes: dict[int, dict[str, float]] = {}
        self.counters: Tallies = {}  # (experiment, arm) -> field -> total, as the Redis hashes hold them

    async def load(self, customer_ids: Sequence[str], event_ids: dict[str, list[str]]
                   ) -> tuple[dict[str, CustomerState], dict[str, SeenWindow]]:
        states = {c: CustomerState.from_dict(dict(self.states[c])) for c in customer_ids if c in self.states}
        windows = {}
        for customer, ids in event_ids.items():
            remembered = self.seen.get(customer, {})
            windows[customer] = SeenWindow(frozenset(i for i in ids if i in remembered), len(remembered),
                                           min(remembered.values()) if remembered else None)
        return states, windows

    async def save(self, updates: Sequence[CustomerUpdate], partitions: Mapping[str, int] | None = None,
                   tallies: Tallies | None = None) -> None:
        merge(self.counters, tallies or {})
        for state, profile, applied in updates:
            partition = (partitions or {}).get(state.customer_id)
            if partition is not None and state.wake_ts is not None:
                self.wakes.setdefault(partition, {})[state.customer_id] = state.wake_ts
            # A copy, as Redis would hold: later changes to the worker's object must not leak in.
            self.states[state.customer_id] = state.copy().to_dict()
            if profile is not None:
                self.profiles.setdefault(state.customer_id, {}).update(profile.to_redis_hash())
            seen = self.seen.setdefault(state.customer_id, {})
            seen.update({event.event_id: event.epoch for event in applied})
            if len(seen) > self.dedup_window:
                newest = sorted(seen.items(), key=lambda pair: (pair[1], pair[0]))[-self.dedup_window:]
                self.seen[state.customer_id] = dict(newest)

    async def due(self, until_by_partition: Mapping[int, float], limit: int) -> dict[int, list[str]]:
        found = {}
        for partition, until_ts in until_by_partition.items():
            wakes = self.wakes.get(partition, {})
            ready = sorted((ts, c) for c, ts in wakes.items() if ts <= until_ts)
            found[partition] = [c for _, c in ready[:limit]]
        return found

    async def drop_wakes(self, partition: int, customer_ids: Sequence[str]) -> None:
        for customer in customer_ids:
            self.wakes.get(partition, {}).pop(customer, None)

    async def forget(self, customer_id: str) -> int:
        found = [store.pop(customer_id, None) is not None for store in (self.states, self.profiles, self.seen)]
        return sum(found)
