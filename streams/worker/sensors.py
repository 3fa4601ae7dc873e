"""Hooks the batch pipeline emits, as Faust's sensors do: observers implement `PipelineSensor` and are handed
to the pipeline; nothing reaches into the pipeline's objects to learn what happened.

>>> counters = BatchCounters()
>>> counters.on_batch_completed(BatchReport(records=3, accepted=2, duplicates=0, offers=1,
...                                         dead_letter_reasons={"malformed_json": 1}))
>>> counters.accepted, counters.dead_letters, counters.dead_letter_reasons
(2, 1, {'malformed_json': 1})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from streams.worker.failures import Failure

# validate + Redis read; the models; publish and wait for the broker's acks; the Redis write.
STAGES = ("load", "process", "publish", "save")


@dataclass(frozen=True)
class BatchReport:
    """One completed batch."""

    records: int
    accepted: int
    duplicates: int
    offers: int
    dead_letter_reasons: dict[str, int]
    undeliverable: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    last_offer_latency_s: float | None = None


class PipelineSensor(Protocol):
    def on_batch_completed(self, report: BatchReport) -> None:
        """A batch was applied completely (its offsets may now be committed)."""

    def on_attempt_failed(self, stage: str, failure: Failure, waiting: int) -> None:
        """An attempt at a batch stage (or an operation such as forget) failed; retried if it can heal."""

    def on_recovered(self) -> None:
        """An operation outside a batch (forget) succeeded after failed attempts."""

    def on_rescored(self, visited: int, gone: int) -> None:
        """A re-scoring round visited customers due in stream time (`gone`: filed, but forgotten or expired)."""

    def on_timed_offers(self, offers: int, undeliverable: int) -> None:
        """A re-scoring round outside a batch published timed triggers' offers (a batch's are in its report)."""


@dataclass
class BatchCounters:
    """Running totals over every completed batch: what `/metrics` and `perso status` count."""

    records: int = 0
    accepted: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    offers: int = 0
    batches: int = 0
    # Records the broker refused even after shrinking them: logged, counted, not published.
    undeliverable: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    last_offer_latency_s: float = 0.0
    # Customers re-scored without an event (their wake time passed in stream time).
    rescored: int = 0
    # Seconds spent in each stage of a batch, summed: where a batch's time (and an event's latency) goes.
    stage_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def on_batch_completed(self, report: BatchReport) -> None:
        self.batches += 1
        self.records += report.records
        self.accepted += report.accepted
        self.duplicates += report.duplicates
        self.offers += report.offers
        self.undeliverable += report.undeliverable
        for reason, count in report.dead_letter_reasons.items():
            self.dead_letter_reasons[reason] = self.dead_letter_reasons.get(reason, 0) + count
            self.dead_letters += count
        for stage, seconds in report.stage_seconds.items():
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds
        if report.last_offer_latency_s is not None:
            self.last_offer_latency_s = report.last_offer_latency_s

    def on_attempt_failed(self, stage: str, failure: Failure, waiting: int) -> None:
        pass

    def on_recovered(self) -> None:
        pass

    def on_rescored(self, visited: int, gone: int) -> None:
        self.rescored += visited

    def on_timed_offers(self, offers: int, undeliverable: int) -> None:
        self.offers += offers
        self.undeliverable += undeliverable
