"""The worker's garbage-collector policy, and what the collector reports (pauses by generation).

CPython's full collection walks every tracked object of its oldest generation. In a worker that is mostly the hot
tier of customer states (a `CustomerState` and about six lists each): with 10,000 hot states a full collection
took 11-81 ms, inside whatever batch it fell in (docs/benchmarks.md, "Full garbage collections"). Whatever survives a
full collection is alive (the collection has just removed every unreachable cycle) and most of it stays: after
each one the worker moves the survivors to the permanent generation (`gc.freeze()`, between batches), so the next
full collection walks only what is younger. Measured: 11-81 -> 0.4-22 ms at 10,000 hot states, and 110 -> 15 ms
on average (longest 203 -> 39) in a soak with 20,000. A frozen object is still freed when its last
reference goes (reference counting); only one that later becomes part of an unreachable cycle is never collected.
`PERSO_GC_FREEZE_SURVIVORS=false` keeps CPython's default.

The sensor is a `gc.callbacks` hook, as Faust's sensors are hooks: it times every collection and counts them.

>>> import gc
>>> collector = CollectorSensor(freeze_survivors=True)
>>> collector.install()
>>> _ = gc.collect()
>>> collector.full_since_freeze, collector.freeze_if_due(), collector.full_since_freeze
(True, True, False)
>>> figures = collector.figures()
>>> figures["gc_collections_gen2"] >= 1, figures["gc_frozen_objects"] > 0
(True, True)
>>> collector.remove(); gc.unfreeze()
"""

from __future__ import annotations

import gc
import time
from collections.abc import Mapping
from typing import Any

GENERATIONS = (0, 1, 2)


class CollectorSensor:
    """Times CPython's collections (by generation) and, when `freeze_survivors`, freezes what a full one left."""

    def __init__(self, freeze_survivors: bool = True) -> None:
        self.freeze_survivors = freeze_survivors
        self.collections = [0, 0, 0]
        self.pause_s = [0.0, 0.0, 0.0]
        self.longest_pause_s = [0.0, 0.0, 0.0]
        self.freezes = 0
        self.full_since_freeze = False
        self._started = 0.0
        # gc.get_freeze_count() walks the whole permanent generation (45 ms for 3 million objects), and the stats
        # are published every second: counted once after each freeze instead (None: not counted since).
        self._frozen: int | None = None

    def install(self) -> None:
        """Hook the collections (the worker calls it once its models are restored and frozen)."""
        self._frozen = None  # whatever froze before (the restored models), counted at the next figures
        if self._observe not in gc.callbacks:
            gc.callbacks.append(self._observe)

    def remove(self) -> None:
        if self._observe in gc.callbacks:
            gc.callbacks.remove(self._observe)

    def _observe(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        generation = info["generation"]
        self.collections[generation] += 1
        self.pause_s[generation] += pause
        if pause > self.longest_pause_s[generation]:
            self.longest_pause_s[generation] = pause
        if generation == 2:
            self.full_since_freeze = True

    @property
    def freeze_due(self) -> bool:
        """Whether a full collection has left survivors to freeze (and freezing is on)."""
        return self.freeze_survivors and self.full_since_freeze

    def freeze_if_due(self) -> bool:
        """Freeze the survivors of the full collections since the last call (call it between batches: a batch's
        own objects die with it). Returns whether it froze."""
        if not self.freeze_due:
            return False
        gc.freeze()
        self._frozen = None
        self.full_since_freeze = False
        self.freezes += 1
        return True

    def figures(self) -> dict[str, float]:
        """Collections, seconds paused and the longest pause (ms) per generation; objects frozen, and how often."""
        values: dict[str, float] = {}
        for generation in GENERATIONS:
            values[f"gc_collections_gen{generation}"] = float(self.collections[generation])
            values[f"gc_pause_seconds_gen{generation}"] = round(self.pause_s[generation], 6)
            values[f"gc_longest_pause_ms_gen{generation}"] = round(1000 * self.longest_pause_s[generation], 3)
        if self._frozen is None:
            self._frozen = gc.get_freeze_count()
        values["gc_frozen_objects"] = float(self._frozen)
        values["gc_freezes"] = float(self.freezes)
        return values


def full_collections_line(figures: Mapping[str, float]) -> str | None:
    """The full collections in words, from `CollectorSensor.figures()` as a worker reports them (its stats hash);
    None before the first.

    >>> full_collections_line({"gc_collections_gen2": 4, "gc_pause_seconds_gen2": 0.06, "gc_longest_pause_ms_gen2": 21})
    'full garbage collections: 4, 15.0 ms each on average, longest 21.0 ms'
    """
    full = figures.get("gc_collections_gen2", 0.0)
    if not full:
        return None
    return (f"full garbage collections: {full:.0f}, {figures.get('gc_pause_seconds_gen2', 0.0) / full * 1000:.1f} ms "
            f"each on average, longest {figures.get('gc_longest_pause_ms_gen2', 0.0):.1f} ms")
