"""The worker's jobs besides the batches: model checkpoints, the stats it publishes, `perso forget` requests,
what it tracks of its partitions, and how it stops when a batch cannot complete. streams/worker/app.py wires
each to Faust (a timer, a task, a signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from collections.abc import Sequence
from typing import Any, NoReturn

import redis.asyncio as aioredis

from schemas.experiments import ExperimentConfig
from streams.observability.telemetry import WorkerTelemetry
from streams.storage import worker_stats
from streams.storage.checkpoints import CheckpointStore
from streams.storage.experiments import ExperimentStore
from streams.worker.contracts import RawRecord
from streams.worker.failures import describe
from streams.worker.pipeline import BatchFailed, BatchPipeline, RoundAbandoned, StoppedDuringRetry, UnsavedAtRevocation

log = logging.getLogger(__name__)

# Exit status of a worker that stopped because a batch could not complete (sysexits' EX_TEMPFAIL):
# a supervisor (Docker, systemd, Kubernetes) restarts it and the group re-delivers the batch.
EXIT_BATCH_FAILED = 75
STATS_LOG_S = 10.0
# A stopped worker's stats hash disappears after this; `status` shows stale ones with their age.


def stop_without_committing(error: BaseException, records: Sequence[RawRecord]) -> NoReturn:
    """Leave the process now, with the batch's offsets uncommitted.

    Faust's `take_events` acks a batch whenever the loop body leaves it, by any route: returning, raising or
    being cancelled. An exception would also make Faust's supervisor restart the agent in this process,
    with the batch's partial effects still in the worker's memory, and commit the unapplied offsets: that
    is how a Redis that ran out of memory once lost 55% of the events. Exiting without running any more of
    the loop commits nothing; the consumer group re-delivers the batch from the committed offset.
    """
    partitions = sorted({f"{r.topic}/{r.partition}" for r in records})
    if isinstance(error, StoppedDuringRetry | asyncio.CancelledError):
        log.warning("stopping while a batch of %d records could not complete (%s); its offsets are not "
                    "committed, the next worker re-reads it (%s)", len(records), describe(error),
                    ", ".join(partitions))
    else:
        log.critical("a batch of %d records cannot complete: %s. Stopping without committing its offsets so "
                     "the consumer group re-delivers it (%s); exit status %d", len(records), describe(error),
                     ", ".join(partitions), EXIT_BATCH_FAILED, exc_info=not isinstance(error, BatchFailed))
    logging.shutdown()
    os._exit(EXIT_BATCH_FAILED)


def stop_unsaved_at_revocation(error: UnsavedAtRevocation) -> NoReturn:
    """Leave the process: the models have learned a round of visits whose customers may belong to another worker
    now. A restart restores the last model checkpoint (taken without the round) and the group re-assigns."""
    log.critical("%s. Stopping so that no worker learns the round's labels twice; exit status %d", error,
                 EXIT_BATCH_FAILED)
    logging.shutdown()
    os._exit(EXIT_BATCH_FAILED)


async def rescore_due(pipeline: BatchPipeline, budget_s: float) -> None:
    """One round of re-scoring silent customers; a failure waits for the next round (no offsets depend on it)."""
    try:
        await pipeline.rescore_due(budget_s)
    except RoundAbandoned as error:
        log.info("re-scoring silent customers gave way: %s; nothing was learned, the visits run again when due",
                 error)
    except (BatchFailed, StoppedDuringRetry) as error:
        log.warning("re-scoring silent customers paused: %s; the round is kept and saved before the next batch "
                    "or round", describe(error))
    except Exception:  # a bug must not end the loop: the next round tries again
        log.exception("re-scoring silent customers failed; trying again in the next round")


class ModelCheckpoints:
    """Restores the models once per process, then saves them periodically and at shutdown, between batches."""

    def __init__(self, store: CheckpointStore, pipeline: BatchPipeline, telemetry: WorkerTelemetry,
                 accepted: Any) -> None:
        self.store = store
        self.pipeline = pipeline
        self.telemetry = telemetry
        self.accepted = accepted  # callable: events accepted so far (nothing new learned: no save)
        self.restored = asyncio.Event()
        self._saved_at_accepted = -1

    async def restore_once(self) -> None:
        """An agent restarted after a crash keeps what it has learned since."""
        if self.restored.is_set():
            return
        await self.store.restore(self.pipeline.personalizer)
        self.restored.set()
        # Modules, Faust's machinery and the restored models live as long as the process: keep their
        # objects out of every full garbage collection (see docs/benchmarks.md: the pauses showed in p99).
        gc.collect()
        gc.freeze()

    async def save_at_shutdown(self) -> None:
        """The last checkpoint, after completing a round of visits that failed to (else it is skipped)."""
        try:
            await self.pipeline.save_unsaved()
        except (BatchFailed, StoppedDuringRetry) as error:
            log.warning("a round of visits could not be saved at shutdown: %s", describe(error))
        await self.save("shutdown")

    async def save(self, why: str) -> None:
        if not self.restored.is_set() or self.accepted() == self._saved_at_accepted:
            return  # not started, or nothing learned since the last save
        try:
            # Between batches only: a checkpoint must never hold a batch that has not completed (it would be
            # learned again when the batch is re-delivered).
            async with self.pipeline.lock:
                if self.pipeline.holds_unsaved:  # a restart from it would learn those visits' labels twice
                    log.warning("model checkpoint (%s) skipped: a round of visits is not saved yet", why)
                    return
                accepted = self.accepted()
                blob = self.store.serialise(self.pipeline.personalizer)
            size = await self.store.save_blob(blob)
        except Exception as error:  # a failed save must not stop the stream; the next one retries
            log.warning("model checkpoint (%s) failed: %s", why, error)
            return
        self._saved_at_accepted = accepted
        self.telemetry.checkpoint_saved_at = time.time()
        log.info("model checkpoint saved (%s): %d bytes", why, size)


class StatsPublisher:
    """Every second: the worker's figures to its stats hash in Redis (for `perso status`); a log line every
    STATS_LOG_S, and a warning while degraded."""

    def __init__(self, client: aioredis.Redis, app_id: str, key: str, telemetry: WorkerTelemetry) -> None:
        self.client = client
        self.app_id = app_id
        self.key = key
        self.telemetry = telemetry
        self._last_logged = 0.0

    async def publish(self) -> None:
        telemetry = self.telemetry
        telemetry.tick()
        try:  # stats must never stop the worker
            async with self.client.pipeline(transaction=True) as pipe:
                worker_stats.write(pipe, self.app_id, self.key, telemetry.stats_hash())
                await pipe.execute()
            telemetry.stats_written(None)
        except Exception as error:
            telemetry.stats_written(error)
        if time.monotonic() - self._last_logged >= STATS_LOG_S:
            self._last_logged = time.monotonic()
            self._log()

    async def remove(self) -> None:
        """A stopped worker must not look alive to `status` and `rebuild`."""
        with contextlib.suppress(Exception):
            await worker_stats.remove(self.client, self.app_id, self.key)

    def _log(self) -> None:
        t, s = self.telemetry, self.telemetry.counters
        log.info("processed records=%d accepted=%d (%.0f/s) offers=%d dead_letters=%d duplicates=%d cached=%d "
                 "(hot %d) last_offer_latency_ms=%.1f", s.records, s.accepted, t.events_per_s, s.offers,
                 s.dead_letters, s.duplicates, t.cached_customers(), t.hot_customers(),
                 s.last_offer_latency_s * 1000)
        if not t.health.ok:
            report = t.health.report()
            log.warning("degraded for %.0fs: %s failing (%s: %s), %d attempts; %d events waiting",
                        report["failing_for_s"], report["stage"], report["cause"], report["error"],
                        report["attempts"], t.events_waiting())


class ForgetListener:
    """`perso forget` deletes the keys itself; this drops the worker's cached copy so it is not written back."""

    def __init__(self, client: aioredis.Redis, channel: str, pipeline: BatchPipeline) -> None:
        self.client = client
        self.channel = channel
        self.pipeline = pipeline

    async def run(self) -> None:
        while True:
            try:
                async with self.client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            customer_id = message["data"].decode()
                            removed = await self.pipeline.forget(customer_id)
                            log.info("forgot customer %s (%d keys deleted)", customer_id, removed)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis down: the keys are deleted by the CLI; retry the subscription
                log.warning("forget listener: %s; resubscribing in 1s", error)
                await asyncio.sleep(1.0)


class Partitions:
    """What the worker knows of its input partitions: how many it owns, where it started reading each, and
    how many events wait on them (from Faust's Monitor sensor, fed at every fetch and commit)."""

    def __init__(self, input_topics: Sequence[str], telemetry: WorkerTelemetry) -> None:
        self.input_topics = tuple(input_topics)
        self.telemetry = telemetry
        # Where this worker started reading each partition: what it waits on before its first commit there.
        self.first_offsets: dict[Any, int] = {}
        self.records_read = 0  # records handed to the agent since the start

    def read(self, events: Sequence[Any]) -> None:
        self.records_read += len(events)
        for event in events:
            self.first_offsets.setdefault(event.message.tp, event.message.offset)

    async def records_waiting(self, app: Any) -> int:
        """Input records the broker holds past this worker's fetch positions (asked of the broker: a fetch that
        comes back empty tells nothing of what waits); 0 while the consumer is not ready."""
        try:
            owned = [tp for tp in app.consumer.assignment() if tp.topic in self.input_topics]
            if not owned:
                return 0
            ends = await app.consumer.highwaters(*owned)
            waiting = 0
            for tp, end in ends.items():
                position = await app.consumer.position(tp)
                if position is not None:
                    waiting += max(0, end - position)
        except Exception:  # not started, or rebalancing: ask again at the next check
            return 0
        return waiting

    def revoked(self, revoked: Any = ()) -> None:
        self.first_offsets.clear()
        if any(tp.topic in self.input_topics for tp in revoked):  # (a worker's first assignment revokes nothing)
            self.telemetry.revocations += 1

    def assigned(self, assigned: Any) -> None:
        self.telemetry.assigned_partitions = sum(1 for tp in assigned if tp.topic in self.input_topics)

    def events_waiting(self, app: Any) -> int:
        """Input events not yet committed on this worker's partitions: the end offset minus the committed one
        (before this worker's first commit on a partition, minus where it started reading)."""
        monitor = app.monitor
        committed, ends = monitor.tp_committed_offsets, monitor.tp_end_offsets
        try:
            assigned = app.consumer.assignment()
        except Exception:  # not started yet
            return 0
        waiting = 0
        for tp in assigned:
            if tp.topic not in self.input_topics or tp not in ends:
                continue
            start = committed.get(tp, self.first_offsets.get(tp))
            if start is not None:
                waiting += max(0, ends[tp] - start)
        return waiting


class ExperimentWatcher:
    """Follows the running experiment in Redis (`perso experiment start|stop`): workers pick up a started or
    stopped experiment within one poll, without a restart, and switch between batches (under the batch lock)."""

    def __init__(self, store: ExperimentStore, pipeline: BatchPipeline, poll_s: float) -> None:
        self.store = store
        self.pipeline = pipeline
        self.poll_s = poll_s
        self.current: ExperimentConfig | None = None

    async def refresh(self) -> None:
        config = await self.store.running()
        if config == self.current:
            return
        async with self.pipeline.lock:
            self.pipeline.personalizer.run_experiment(config)
        if config is not None:
            log.info("experiment %r running: %s", config.name,
                     ", ".join(f"{arm.name} ({arm.policy}) {arm.share:g}%" for arm in config.arms))
        else:
            log.info("experiment %r stopped; offers follow PERSO_POLICY", self.current.name if self.current else "?")
        self.current = config

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except ValueError as error:  # an arm names a policy this worker does not have (PERSO_PLUGINS)
                log.error("cannot run the experiment: %s; offers follow PERSO_POLICY", error)
            except Exception as error:  # Redis down: the batches report it; keep the experiment as it was
                log.warning("experiments: %s; trying again in %.0fs", describe(error), self.poll_s)
            await asyncio.sleep(self.poll_s)
