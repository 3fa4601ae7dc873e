"""The worker's garbage-collector sensor: it times collections by generation and freezes a full one's survivors."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from streams.observability.health import BatchHealth
from streams.observability.telemetry import WorkerTelemetry
from streams.worker.collector import CollectorSensor
from streams.worker.sensors import BatchCounters


@pytest.fixture
def collector() -> Iterator[CollectorSensor]:
    sensor = CollectorSensor(freeze_survivors=True)
    sensor.install()
    try:
        yield sensor
    finally:
        sensor.remove()
        gc.unfreeze()  # the rest of the suite collects as usual


class Node:
    """An object that can sit in a reference cycle and be watched for being freed."""

    def __init__(self) -> None:
        self.other: object = None


def test_a_full_collection_is_timed_counted_and_its_survivors_frozen(collector: CollectorSensor) -> None:
    survivor = Node()
    gc.collect()
    figures = collector.figures()
    assert figures["gc_collections_gen2"] >= 1 and figures["gc_pause_seconds_gen2"] > 0
    assert figures["gc_longest_pause_ms_gen2"] > 0 and collector.full_since_freeze
    frozen_before = gc.get_freeze_count()
    assert collector.freeze_if_due()
    assert gc.get_freeze_count() > frozen_before
    assert not any(o is survivor for o in gc.get_objects())  # out of every later collection
    assert not collector.freeze_if_due()  # nothing new since: no second freeze
    assert collector.figures()["gc_freezes"] == 1


def test_the_frozen_objects_are_counted_once_per_freeze_not_at_every_report(
        collector: CollectorSensor, monkeypatch: pytest.MonkeyPatch) -> None:
    # Counting walks the whole permanent generation (tens of ms for millions of objects), and the worker reports
    # its figures every second, on its event loop.
    counted = [0]
    count = gc.get_freeze_count

    def counting() -> int:
        counted[0] += 1
        return count()

    monkeypatch.setattr(gc, "get_freeze_count", counting)
    first = collector.figures()["gc_frozen_objects"]
    for _ in range(5):
        assert collector.figures()["gc_frozen_objects"] == first
    assert counted[0] <= 1
    kept = [Node() for _ in range(100)]
    gc.collect()
    assert collector.freeze_if_due()
    assert collector.figures()["gc_frozen_objects"] >= first + len(kept)  # counted again after the freeze
    assert collector.figures()["gc_frozen_objects"] == count() and counted[0] <= 2


def test_a_frozen_object_is_still_freed_when_its_last_reference_goes(collector: CollectorSensor) -> None:
    # What makes freezing the hot customer states safe: a state dropped from the cache has no cycle, so
    # reference counting frees it, frozen or not.
    state = Node()
    watch = weakref.ref(state)
    gc.collect()
    collector.freeze_if_due()
    del state
    assert watch() is None


def test_a_cycle_frozen_while_alive_is_not_collected_until_unfrozen(collector: CollectorSensor) -> None:
    # The price, measured in docs/benchmarks.md: a cycle alive when frozen and dropped later stays in memory.
    first, second = Node(), Node()
    first.other, second.other = second, first
    watch = weakref.ref(first)
    gc.collect()
    collector.freeze_if_due()
    del first, second
    gc.collect()
    assert watch() is not None
    gc.unfreeze()
    gc.collect()
    assert watch() is None


def test_freezing_off_counts_but_never_freezes() -> None:
    sensor = CollectorSensor(freeze_survivors=False)
    sensor.install()
    try:
        frozen = gc.get_freeze_count()
        gc.collect()
        assert not sensor.freeze_if_due() and gc.get_freeze_count() == frozen
        assert sensor.figures()["gc_collections_gen2"] >= 1
    finally:
        sensor.remove()
    counted = sensor.collections[2]
    gc.collect()
    assert sensor.collections[2] == counted  # removed: no longer called


def test_the_worker_reports_the_pauses_in_its_stats_and_metrics(collector: CollectorSensor) -> None:
    gc.collect()
    telemetry = WorkerTelemetry(BatchCounters(), BatchHealth(), gc_figures=collector.figures)
    snapshot = telemetry.snapshot()
    assert snapshot["gc_collections_gen2"] >= 1 and "gc_frozen_objects" in snapshot
    metrics = telemetry.prometheus().decode()
    assert 'perso_gc_collections_total{generation="2"}' in metrics
    assert 'perso_gc_pause_seconds_total{generation="2"}' in metrics
    assert 'perso_gc_longest_pause_seconds{generation="2"}' in metrics and "perso_gc_frozen_objects " in metrics
    # A telemetry without the sensor (tests, tools) reports no such figures.
    assert "perso_gc_" not in WorkerTelemetry(BatchCounters(), BatchHealth()).prometheus().decode()
