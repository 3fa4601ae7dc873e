"""The event-loop probe: a stretch of code that does not yield is measured as a stall, from inside the loop."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from streams.observability.health import BatchHealth
from streams.observability.telemetry import WorkerTelemetry
from streams.worker.loop_stalls import LoopStallSensor
from streams.worker.sensors import BatchCounters


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_code_that_does_not_yield_is_measured_as_a_stall_and_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    # A handler on the module's own logger: earlier tests configure logging as the CLI does (levels, propagation,
    # disabled loggers), which the root logger's capture would depend on.
    logger, kept = logging.getLogger("streams.worker.loop_stalls"), Kept()
    monkeypatch.setattr(logger, "disabled", False)
    monkeypatch.setattr(logger, "level", logging.WARNING)
    logger.addHandler(kept)
    sensor = LoopStallSensor(probe_s=0.02, stall_s=0.2)
    stop = False

    async def blocked_once() -> None:
        nonlocal stop
        probing = asyncio.create_task(sensor.run(lambda: stop))
        await asyncio.sleep(0.1)  # a few quiet probes first
        time.sleep(0.35)  # a batch that never awaits
        await asyncio.sleep(0.1)
        stop = True
        await probing

    try:
        asyncio.run(blocked_once())
    finally:
        logger.removeHandler(kept)
    figures = sensor.figures()
    assert figures["loop_stalls"] == 1
    assert 300 <= figures["loop_longest_stall_ms"] < 1000
    assert figures["loop_probes"] >= 5
    assert figures["loop_late_seconds"] >= 0.3
    assert (figures["loop_late_100ms"], figures["loop_late_500ms"]) == (1, 0)  # the one 0.35 s wake-up
    # The line names the stall as measured (0.35 s of sleep, and however late the loop ran on a busy machine).
    blocked = f"event loop was blocked for {sensor.longest_s:.1f} s"
    assert any(blocked in message for message in kept.messages), kept.messages


def test_a_loop_that_yields_has_no_stall() -> None:
    sensor = LoopStallSensor(probe_s=0.01, stall_s=0.2)
    stop = False

    async def yielding() -> None:
        nonlocal stop
        probing = asyncio.create_task(sensor.run(lambda: stop))
        for _ in range(30):
            time.sleep(0.005)  # short pieces of work between awaits
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        stop = True
        await probing

    asyncio.run(yielding())
    assert sensor.figures()["loop_stalls"] == 0 and sensor.figures()["loop_longest_stall_ms"] < 200


def test_the_worker_reports_stalls_and_revocations_in_its_stats_and_metrics() -> None:
    sensor = LoopStallSensor(stall_s=1.0)
    sensor.observe(1.25)
    telemetry = WorkerTelemetry(BatchCounters(), BatchHealth(), loop_figures=sensor.figures)
    telemetry.revocations = 2
    snapshot = telemetry.snapshot()
    assert snapshot["loop_stalls"] == 1 and snapshot["loop_longest_stall_ms"] == 1250 and snapshot["revocations"] == 2
    metrics = telemetry.prometheus().decode()
    assert "perso_loop_stalls_total 1.0" in metrics and "perso_loop_longest_stall_seconds 1.25" in metrics
    assert "perso_partition_revocations_total 2.0" in metrics
    assert 'perso_loop_late_probes_total{at_least_seconds="0.5"} 1.0' in metrics
    assert 'perso_loop_late_probes_total{at_least_seconds="0.01"} 1.0' in metrics
    assert "perso_loop_" not in WorkerTelemetry(BatchCounters(), BatchHealth()).prometheus().decode()
