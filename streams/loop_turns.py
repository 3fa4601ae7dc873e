"""Turns of the worker's one event loop for long stretches of synchronous work.

The batch, the timer's rounds, the web server, the stats and aiokafka's heartbeats and fetches share one asyncio
loop (docs/design.md, "One event loop, shared"). A loop over many customers (a batch's models, a round's visits,
a save's serialising) checks `Turns.due()` between customers and awaits `a_turn()` when it says so: whoever holds
the pipeline lock keeps it, so no other batch, round or checkpoint interleaves, but everything else runs.

>>> import asyncio
>>> async def count(customers: int) -> int:
...     turns, taken = Turns(every_s=0.0), 0
...     for _ in range(customers):
...         if turns.due():
...             await a_turn()
...             taken += 1
...     return taken
>>> asyncio.run(count(3))
3
"""

from __future__ import annotations

import asyncio
import time

# The longest a stretch of work runs before the event loop gets a turn: a replay's batch of 500 baskets with its
# catch-up visits held it 1.5 s (docs/benchmarks.md).
TURN_EVERY_S = 0.05


class Turns:
    """When a loop of work is due to give the event loop a turn: every `every_s` (TURN_EVERY_S)."""

    __slots__ = ("_every_s", "_next")

    def __init__(self, every_s: float = TURN_EVERY_S) -> None:
        self._every_s = every_s
        self._next = time.perf_counter() + every_s

    def due(self) -> bool:
        now = time.perf_counter()
        if now < self._next:
            return False
        self._next = now + self._every_s
        return True


async def a_turn() -> None:
    """Give the event loop a turn that lets a task sleeping on a timer (a heartbeat, the stats) run: in a first
    step the loop finds the expired timer and resolves its future, in the second it queues the task's wakeup
    behind this one, in the third it runs it. With one `sleep(0)` such a task waited for the next turn or two."""
    for _ in range(3):
        await asyncio.sleep(0)
