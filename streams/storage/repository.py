"""What the worker's pipeline needs from customer storage, whatever stores it (Redis in production, memory
in tests and the simulator).

`load` returns the states asked for and, per customer, which of the batch's event ids were already applied
(`SeenWindow`); `save` writes each changed customer's state, profile and newly applied event ids, and adds what
they counted to the experiments' counters (`tallies`), all atomically, and files the customer under its input
partition's wake index at `state.wake_ts`; `due` lists, per partition, the customers whose wake time has passed
(the re-scoring sweep's work); `drop_wakes` removes entries whose customer is gone (forgotten or expired).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from models.experiments.attribution import Tallies
from models.state import CustomerState
from schemas.events import InputEvent
from schemas.profile import ProfileUpdate

# One changed customer: its state, its readable profile (None: unchanged), and the events applied to it in
# this batch.
CustomerUpdate = tuple[CustomerState, ProfileUpdate | None, Sequence[InputEvent]]


@dataclass(frozen=True)
class SeenWindow:
    """What storage remembers for one customer: the ids among those asked about, and the window's floor."""

    seen: frozenset[str] = frozenset()
    size: int = 0
    oldest_ts: float | None = None

    def floor(self, window: int) -> float | None:
        """Event time at or below which an unknown id cannot be told apart from a forgotten one."""
        return self.oldest_ts if self.size >= window else None


class CustomerRepository(Protocol):
    dedup_window: int

    async def load(self, customer_ids: Sequence[str], event_ids: dict[str, list[str]]
                   ) -> tuple[dict[str, CustomerState], dict[str, SeenWindow]]: ...

    async def save(self, updates: Sequence[CustomerUpdate], partitions: Mapping[str, int] | None = None,
                   tallies: Tallies | None = None) -> None: ...

    async def due(self, until_by_partition: Mapping[int, float], limit: int) -> dict[int, list[str]]: ...

    async def drop_wakes(self, partition: int, customer_ids: Sequence[str]) -> None: ...

    async def forget(self, customer_id: str) -> int: ...
