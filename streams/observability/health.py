"""Whether the worker's batches complete: the failure being retried now, since when, and failed attempts by cause.

A pipeline sensor: it hears of each failed attempt and each completed batch. `/health`, `/metrics` and the
stats hash that `perso status` reads all show the same record, so an operator sees "degraded" as long as a
batch is stuck, with the error and how many events wait behind it.

>>> from streams.worker.failures import Failure
>>> health = BatchHealth(clock=lambda: 100.0)
>>> health.on_attempt_failed("save", Failure("redis_out_of_memory", True, "OutOfMemoryError: ..."), waiting=50)
>>> health.ok, health.failures_by_cause
(False, {'redis_out_of_memory': 1})
>>> health.completed()
>>> health.ok
True
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streams.worker.failures import Failure
from streams.worker.sensors import BatchReport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CurrentFailure:
    failure: Failure
    stage: str
    since: float
    attempts: int
    waiting: int  # records of the batch that cannot complete


class BatchHealth:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.current: CurrentFailure | None = None
        self.failures_by_cause: dict[str, int] = {}
        self.last_recovery_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.current is None

    def on_attempt_failed(self, stage: str, failure: Failure, waiting: int) -> None:
        """One attempt at a batch stage failed (it will be retried, or the worker stops)."""
        self.failures_by_cause[failure.cause] = self.failures_by_cause.get(failure.cause, 0) + 1
        previous = self.current
        since = previous.since if previous is not None else self.clock()
        attempts = previous.attempts + 1 if previous is not None else 1
        self.current = CurrentFailure(failure, stage, since, attempts, waiting)

    def on_batch_completed(self, report: BatchReport) -> None:
        self.completed()

    def on_recovered(self) -> None:
        self.completed()

    def on_rescored(self, visited: int, gone: int) -> None:
        pass

    def on_timed_offers(self, offers: int, undeliverable: int) -> None:
        pass

    def completed(self) -> None:
        """A batch completed: whatever was failing has healed."""
        current = self.current
        if current is not None:
            self.last_recovery_s = self.clock() - current.since
            log.warning("batch completed after %.1fs of failures (%s, %d attempts); nothing was skipped",
                        self.last_recovery_s, current.failure.cause, current.attempts)
            self.current = None

    def report(self) -> dict[str, Any]:
        """JSON-ready: {"status": "ok"} or the failure being retried."""
        current = self.current
        if current is None:
            return {"status": "ok"}
        return {"status": "degraded", "cause": current.failure.cause, "error": current.failure.detail,
                "stage": current.stage, "healable": current.failure.healable,
                "since": current.since, "failing_for_s": round(self.clock() - current.since, 1),
                "attempts": current.attempts, "batch_records": current.waiting}
