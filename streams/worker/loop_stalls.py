"""How long the worker's event loop went without a turn, measured from inside it.

Everything the worker does shares one asyncio loop: batches, the re-scoring rounds, the web server, and aiokafka's
heartbeats. A stretch of Python that does not yield (a batch's models, a round of catch-up visits after a replay
moved stream time by days, a full garbage collection) holds all of them up: offers wait, `/health` does not answer,
and a stall longer than the consumer's session timeout makes the group rebalance. The sensor sleeps `probe_s` over
and over and counts how late each sleep ends; a late wake-up of `stall_s` or more is a stall, logged (at most once a
minute) and counted. `perso status` and `/metrics` (`perso_loop_*`) show the figures.

>>> sensor = LoopStallSensor(stall_s=1.0)
>>> for late in (0.001, 0.002, 1.5):
...     sensor.observe(late)
>>> figures = sensor.figures()
>>> figures["loop_stalls"], figures["loop_longest_stall_ms"], figures["loop_late_seconds"]
(1.0, 1500.0, 1.503)
>>> figures["loop_late_10ms"], figures["loop_late_500ms"]  # probes that woke at least 10 ms, 500 ms late
(1.0, 1.0)
>>> loop_stalls_line(figures)
'event loop: 1 stalls of 1 s or more, longest 1500 ms; 1.5 s late in all over 3 probes'
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

PROBE_S = 0.1  # how often the loop is probed: its overhead is one wake-up per probe
STALL_S = 1.0  # a loop this late is stalled: heartbeats, the web server and offers all waited
LOG_EVERY_S = 60.0  # stalls are logged at most this often (a replay's catch-up rounds can stall many times)
# Probes counted by how late they woke, at least each of these (what an offer's latency tail is made of).
LATE_AT_LEAST_MS = (10, 50, 100, 500)


class LoopStallSensor:
    """Probes the running loop: `run()` as a task; `observe(late_s)` is what each probe reports."""

    def __init__(self, probe_s: float = PROBE_S, stall_s: float = STALL_S,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.probe_s = probe_s
        self.stall_s = stall_s
        self.clock = clock
        self.probes = 0
        self.stalls = 0
        self.late_s = 0.0
        self.longest_s = 0.0
        self.late_at_least = dict.fromkeys(LATE_AT_LEAST_MS, 0)  # ms -> probes that woke at least that late
        self._logged_at = float("-inf")
        self._unlogged = 0  # stalls since the last line logged

    async def run(self, stopping: Callable[[], bool]) -> None:
        while not stopping():
            started = self.clock()
            await asyncio.sleep(self.probe_s)
            self.observe(self.clock() - started - self.probe_s)

    def observe(self, late_s: float) -> None:
        late_s = max(0.0, late_s)
        self.probes += 1
        self.late_s += late_s
        self.longest_s = max(self.longest_s, late_s)
        for ms in LATE_AT_LEAST_MS:
            if late_s * 1000 >= ms:
                self.late_at_least[ms] += 1
        if late_s < self.stall_s:
            return
        self.stalls += 1
        self._unlogged += 1
        now = self.clock()
        if now - self._logged_at >= LOG_EVERY_S:
            log.warning("the event loop was blocked for %.1f s (%d stalls of %g s or more since the last such line; "
                        "longest %.1f s since start): offers, heartbeats and the web server waited meanwhile",
                        late_s, self._unlogged, self.stall_s, self.longest_s)
            self._logged_at, self._unlogged = now, 0

    def figures(self) -> dict[str, float]:
        figures = {"loop_stalls": float(self.stalls), "loop_longest_stall_ms": round(1000 * self.longest_s, 3),
                   "loop_late_seconds": round(self.late_s, 6), "loop_probes": float(self.probes)}
        figures.update({f"loop_late_{ms}ms": float(count) for ms, count in self.late_at_least.items()})
        return figures


def loop_stalls_line(figures: Mapping[str, float]) -> str | None:
    """One line for `perso status`, or None before the first probe."""
    probes = figures.get("loop_probes", 0.0)
    if not probes:
        return None
    return (f"event loop: {figures.get('loop_stalls', 0):.0f} stalls of {STALL_S:g} s or more, longest "
            f"{figures.get('loop_longest_stall_ms', 0):.0f} ms; {figures.get('loop_late_seconds', 0):.1f} s late in "
            f"all over {probes:.0f} probes")
