"""The Faust app: one agent consumes both input topics keyed by customer and runs the batch pipeline.

Why no `group_by`: Faust's repartitioning keeps each source event un-acked until its repartitioned copy
has been processed. On a rebalance or a shutdown the consumer stops fetching first and then waits
(`stream_wait_empty`) for in-flight events, which now can never complete: the worker hangs in
`wait_empty: Waiting for tasks ... offset=N` (reproduced on tansu, see DESIGN notes in the README).
Producers key events by customer instead, so per-customer state needs no repartition at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import time
from collections.abc import Sequence
from typing import Any, NoReturn

import faust

from models.personalizer import Personalizer
from schemas.dead_letter import DeadLetter
from schemas.offers import Offer
from streams import kafka_transport
from streams.batch_health import BatchHealth
from streams.checkpoints import CheckpointStore
from streams.failures import describe
from streams.pipeline import BatchFailed, BatchPipeline, Outgoing, RawRecord, StoppedDuringRetry
from streams.privacy import Pseudonymiser
from streams.profile_store import ProfileStore
from streams.security import faust_credentials, redis_async
from streams.settings import Settings
from streams.state_cache import StateCache
from streams.telemetry import WorkerTelemetry
from streams.web import register_views

log = logging.getLogger(__name__)
STATS_PUBLISH_S = 1.0
STATS_LOG_S = 10.0
# A stopped worker's stats hash disappears after this; `status` shows stale ones with their age.
STATS_TTL_S = 120
# Exit status of a worker that stopped because a batch could not complete (sysexits' EX_TEMPFAIL):
# a supervisor (Docker, systemd, Kubernetes) restarts it and the group re-delivers the batch.
EXIT_BATCH_FAILED = 75


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


def create_app(settings: Settings) -> faust.App:
    kafka_transport.install(settings.fetch_max_wait_ms)
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        broker_credentials=faust_credentials(settings),
        store="memory://",
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        # A member that died without leaving holds the group until this passes; keep restarts quick.
        broker_rebalance_timeout=max(2 * settings.session_timeout_s, 20.0),
        stream_buffer_maxsize=settings.stream_buffer_maxsize,
        web_enabled=settings.web_enabled,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        producer_max_request_size=settings.producer_max_request_bytes,
    )
    # Raw bytes in: validation is ours (pydantic), and dead letters keep the original bytes.
    inputs = app.topic(*settings.input_topics, partitions=settings.partitions, key_serializer="raw",
                       value_serializer="raw")

    redis_client = redis_async(settings)
    store = ProfileStore(redis_client, ttl_s=settings.profile_ttl_days * 86_400, dedup_window=settings.dedup_window)
    pseudonymiser = Pseudonymiser(settings.pseudonymise_key_bytes)

    async def publish(offers: Sequence[Offer], dead: Sequence[DeadLetter]) -> list[tuple[Outgoing, BaseException]]:
        # Straight to the producer: Faust's Topic.send adds a channel, a pending message and a callback per
        # record (6% of the worker under py-spy, half the offers' cost).
        producer = app.producer
        sent: list[tuple[Outgoing, Any]] = []
        refused: list[tuple[Outgoing, BaseException]] = []
        outgoing: list[tuple[str, bytes | None, Outgoing]] = [
            (settings.offers_topic, offer.customer_id.encode(), offer) for offer in offers]
        outgoing += [(settings.dead_letter_topic, letter.key.encode() if letter.key is not None else None, letter)
                     for letter in dead]
        for topic, key, record in outgoing:
            try:  # the producer refuses some records at once (too large, no metadata in time)
                sent.append((record, await producer.send(topic, key, record.__pydantic_serializer__.to_json(record),
                                                         None, None, None)))
            except Exception as error:
                refused.append((record, error))
        # Wait for broker acknowledgement before Redis is written and the input offsets are acked.
        results = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
        refused += [(record, result) for (record, _), result in zip(sent, results, strict=True)
                    if isinstance(result, BaseException)]
        return refused

    cache = StateCache(capacity=max(settings.state_cache_capacity, settings.state_cache_hot),
                       hot=settings.state_cache_hot)
    health = BatchHealth()
    pipeline = BatchPipeline(Personalizer(settings.model_config_()), store, publish, settings.topic_kind,
                             cache=cache, pseudonymiser=pseudonymiser, health=health,
                             retry_max_s=settings.redis_retry_max_s, stopping=lambda: bool(app.should_stop))
    # Where this worker started reading each partition: what it waits on before its first commit there.
    first_offsets: dict[Any, int] = {}
    advertised = socket.gethostname() if settings.web_host in ("0.0.0.0", "::") else settings.web_host
    telemetry = WorkerTelemetry(pipeline, health, lambda: events_waiting(app, settings.input_topics, first_offsets),
                                web_url=f"http://{advertised}:{settings.web_port}" if settings.web_enabled else None)
    register_views(app, telemetry, store, pseudonymiser)
    checkpoints = CheckpointStore(redis_client, settings.app_id)
    stats_key = f"perso:stats:{settings.app_id}:{socket.gethostname()}:{os.getpid()}"
    restored = asyncio.Event()
    saved_at_accepted = -1

    async def save_checkpoint(why: str) -> None:
        nonlocal saved_at_accepted
        if pipeline.stats.accepted == saved_at_accepted:
            return  # nothing learned since the last save
        try:
            # Between batches only: a checkpoint must never hold a batch that has not completed (it would be
            # learned again when the batch is re-delivered).
            async with pipeline.lock:
                blob = checkpoints.serialise(pipeline.personalizer)
            size = await checkpoints.save_blob(blob)
        except Exception as error:  # a failed save must not stop the stream; the next one retries
            log.warning("model checkpoint (%s) failed: %s", why, error)
            return
        saved_at_accepted = pipeline.stats.accepted
        telemetry.checkpoint_saved_at = time.time()
        log.info("model checkpoint saved (%s): %d bytes", why, size)

    @app.agent(inputs, name="personalize")
    async def personalize(stream: Any) -> None:
        if not restored.is_set():
            # Once per process: an agent restarted after a crash keeps what it has learned since.
            await checkpoints.restore(pipeline.personalizer)
            restored.set()
            # Modules, Faust's machinery and the restored models live as long as the process: keep their
            # ~150,000 objects out of every full garbage collection (a 70 ms pause each, under p99).
            gc.collect()
            gc.freeze()
        async for events in stream.take_events(settings.batch_size, within=settings.batch_window_s):
            records = [RawRecord(e.message.topic, e.message.partition, e.message.offset,
                                 e.message.key, e.message.value) for e in events]
            for event in events:
                first_offsets.setdefault(event.message.tp, event.message.offset)
            try:
                await pipeline.handle(records)
            except BaseException as error:  # cancellation too: see stop_without_committing
                stop_without_committing(error, records)

    @app.timer(settings.checkpoint_interval_s)
    async def periodic_checkpoint() -> None:
        if restored.is_set():
            await save_checkpoint("periodic")

    async def checkpoint_on_shutdown(sender: Any, *args: Any, **kwargs: Any) -> None:
        # Sent by Faust after the consumer has stopped: the models hold everything processed.
        if restored.is_set():
            await save_checkpoint("shutdown")
        with contextlib.suppress(Exception):  # a stopped worker must not look alive to `status`/`rebuild`
            await redis_client.delete(stats_key)

    app.on_before_shutdown.connect(checkpoint_on_shutdown)  # type: ignore[arg-type]

    async def forget_revoked(sender: Any, revoked: Any = (), **kwargs: Any) -> None:
        pipeline.cache.clear()
        first_offsets.clear()

    async def count_assigned(sender: Any, assigned: Any = (), **kwargs: Any) -> None:
        telemetry.assigned_partitions = sum(1 for tp in assigned if tp.topic in settings.input_topics)

    app.on_partitions_revoked.connect(forget_revoked)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(count_assigned)  # type: ignore[arg-type]

    @app.task
    async def listen_for_forget() -> None:
        # `perso forget` deletes the keys itself; this drops the worker's cached copy so it is not written back.
        while True:
            try:
                async with redis_client.pubsub() as pubsub:
                    await pubsub.subscribe(settings.forget_channel)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            customer_id = message["data"].decode()
                            removed = await pipeline.forget(customer_id)
                            log.info("forgot customer %s (%d keys deleted)", customer_id, removed)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis down: the keys are deleted by the CLI; retry the subscription
                log.warning("forget listener: %s; resubscribing in 1s", error)
                await asyncio.sleep(1.0)

    last_logged = 0.0

    @app.timer(STATS_PUBLISH_S)
    async def report() -> None:
        # Telemetry in Redis for `perso status`; a log line every STATS_LOG_S.
        nonlocal last_logged
        telemetry.tick()
        try:  # stats must never stop the worker
            async with redis_client.pipeline(transaction=True) as pipe:
                pipe.hset(stats_key, mapping=telemetry.stats_hash())  # type: ignore[arg-type]
                pipe.expire(stats_key, STATS_TTL_S)
                await pipe.execute()
            telemetry.stats_written(None)
        except Exception as error:
            telemetry.stats_written(error)
        if time.monotonic() - last_logged < STATS_LOG_S:
            return
        last_logged = time.monotonic()
        s = pipeline.stats
        log.info("processed records=%d accepted=%d (%.0f/s) offers=%d dead_letters=%d duplicates=%d cached=%d "
                 "last_offer_latency_ms=%.1f", s.records, s.accepted, telemetry.events_per_s, s.offers,
                 s.dead_letters, s.duplicates, len(pipeline.cache), s.last_offer_latency_s * 1000)
        if not health.ok:
            report = health.report()
            log.warning("degraded for %.0fs: %s failing (%s: %s), %d attempts; %d events waiting",
                        report["failing_for_s"], report["stage"], report["cause"], report["error"],
                        report["attempts"], telemetry.events_waiting())

    return app


def events_waiting(app: faust.App, input_topics: Sequence[str], first_offsets: dict[Any, int]) -> int:
    """Input events not yet committed on this worker's partitions: the end offset minus the committed offset,
    both as Faust's Monitor sensor tracks them (the end offset at every fetch, the committed one at each of
    this worker's commits); before its first commit on a partition, from where it started reading it."""
    monitor = app.monitor
    committed, ends = monitor.tp_committed_offsets, monitor.tp_end_offsets
    try:
        assigned = app.consumer.assignment()
    except Exception:  # not started yet
        return 0
    waiting = 0
    for tp in assigned:
        if tp.topic not in input_topics or tp not in ends:
            continue
        start = committed.get(tp, first_offsets.get(tp))
        if start is not None:
            waiting += max(0, ends[tp] - start)
    return waiting
