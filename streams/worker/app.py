"""The Faust app, wired: one agent consumes both input topics keyed by customer and runs the batch pipeline;
the jobs of streams/worker/lifecycle.py run beside it.

Why no `group_by`: Faust's repartitioning keeps each source event un-acked until its repartitioned copy
has been processed. On a rebalance or a shutdown the consumer stops fetching first and then waits
(`stream_wait_empty`) for in-flight events, which now can never complete: the worker hangs in
`wait_empty: Waiting for tasks ... offset=N` (reproduced on tansu, see docs/design.md). Producers key events
by customer instead, so per-customer state needs no repartition at all.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

import faust
from faust.types import TP

from models.personalizer import Personalizer
from streams.observability.health import BatchHealth
from streams.observability.telemetry import WorkerTelemetry
from streams.observability.web import register_views, web_server_options
from streams.privacy import Pseudonymiser
from streams.security import faust_credentials, redis_async
from streams.settings import Settings
from streams.storage import keys
from streams.storage.catalog_store import CatalogStore
from streams.storage.checkpoints import CheckpointStore
from streams.storage.customer_store import RedisCustomerStore
from streams.storage.experiments import ExperimentStore
from streams.storage.promotions import PromotionBudgets
from streams.storage.state_cache import StateCache
from streams.worker import kafka_transport
from streams.worker.catalog import CatalogFollower
from streams.worker.collector import CollectorSensor
from streams.worker.contracts import RawRecord, is_historical
from streams.worker.fetch_wait import CHECK_S, FetchWaitGovernor
from streams.worker.lifecycle import (
    ExperimentWatcher,
    ForgetListener,
    ModelCheckpoints,
    Partitions,
    StatsPublisher,
    rescore_due,
    stop_unsaved_at_revocation,
    stop_without_committing,
)
from streams.worker.loop_stalls import LoopStallSensor
from streams.worker.pipeline import BatchPipeline, UnsavedAtRevocation
from streams.worker.publisher import KafkaPublisher
from streams.worker.sensors import BatchCounters

STATS_PUBLISH_S = 1.0
GC_FREEZE_CHECK_S = 1.0  # how soon after a full collection its survivors are frozen
log = logging.getLogger(__name__)


def faust_app(settings: Settings) -> faust.App:
    """The Faust app with the worker's broker, consumer and web settings, no agents yet: the engine's worker
    and the bare-agent benchmark (bench/bare_agent.py) are built on the same one, so the bench measures the
    framework exactly as the engine runs it."""
    kafka, worker = settings.kafka, settings.worker
    kafka_transport.install(kafka.fetch_max_wait_ms)
    faust_dirs = settings.stack.state_dir / "faust"
    faust_dirs.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level of its data directory
    return faust.App(
        settings.app_id,
        broker=kafka.broker_url,
        broker_credentials=faust_credentials(kafka),
        store="memory://",
        # Faust makes a data directory even with in-memory tables; by default `{id}-data` in the working
        # directory, one per consumer group. Kept with the stack's other files instead.
        datadir=str(faust_dirs / "{conf.id}"),
        autodiscover=False,
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=kafka.session_timeout_s,
        broker_heartbeat_interval=kafka.heartbeat_interval_s,
        # A member that died without leaving holds the group until this passes; keep restarts quick.
        broker_rebalance_timeout=max(2 * kafka.session_timeout_s, 20.0),
        stream_buffer_maxsize=worker.stream_buffer_maxsize,
        cython_optimizations=worker.cython_optimizations,
        web_enabled=worker.web_enabled,
        web_host=worker.web_host,
        web_bind=worker.web_host,
        web_port=worker.web_port,
        producer_max_request_size=kafka.producer_max_request_bytes,
        **web_server_options(worker),  # access control (tokens, roles) and TLS of the web server
    )


def input_topic(app: faust.App, settings: Settings) -> Any:
    """The input topics as one Faust topic of raw bytes: validation is ours (pydantic), and dead letters keep
    the original bytes."""
    kafka = settings.kafka
    return app.topic(*kafka.input_topics, partitions=kafka.partitions, key_serializer="raw", value_serializer="raw")


def create_app(settings: Settings) -> faust.App:
    kafka, worker = settings.kafka, settings.worker
    app = faust_app(settings)
    inputs = input_topic(app, settings)

    redis_client = redis_async(settings.redis)
    store = RedisCustomerStore(redis_client, ttl_s=settings.redis.profile_ttl_days * 86_400,
                               dedup_window=settings.redis.dedup_window)
    pseudonymiser = Pseudonymiser(worker.pseudonymise_key_bytes)
    counters, health = BatchCounters(), BatchHealth()
    async def send(topic: str, key: bytes | None, value: bytes) -> Any:
        return await app.producer.send(topic, key, value, None, None, None)

    pipeline = BatchPipeline(
        Personalizer(settings.models), store, KafkaPublisher(send, kafka.offers_topic, kafka.dead_letter_topic),
        kafka.kind_of_topic, cache=StateCache(capacity=max(worker.state_cache_capacity, worker.state_cache_hot),
                                              hot=worker.state_cache_hot),
        pseudonymiser=pseudonymiser, sensors=[counters, health], retry_max_s=worker.redis_retry_max_s,
        stopping=lambda: bool(app.should_stop), rescore_batch=worker.rescore_batch,
        input_topics=kafka.input_topics,
        unread=lambda topic, partition, next_offset: _unread(app, topic, partition, next_offset),
        promotion_budgets=PromotionBudgets(redis_client),
        live_clock=(lambda: time.time() - worker.live_clock_grace_s) if worker.live_clock else None)
    advertised = socket.gethostname() if worker.web_host in ("0.0.0.0", "::") else worker.web_host
    scheme = "https" if worker.web_tls_certfile is not None else "http"
    collector = CollectorSensor(freeze_survivors=worker.gc_freeze_survivors)  # installed while the agent runs
    loop_stalls = LoopStallSensor()
    telemetry = WorkerTelemetry(counters, health, pipeline.personalizer.metrics, lambda: len(pipeline.cache),
                                lambda: partitions.events_waiting(app),
                                web_url=f"{scheme}://{advertised}:{worker.web_port}" if worker.web_enabled else None,
                                hot_customers=lambda: pipeline.cache.hot_held, gc_figures=collector.figures,
                                loop_figures=loop_stalls.figures)
    partitions = Partitions(kafka.input_topics, telemetry)
    experiments = ExperimentStore(redis_client)
    register_views(app, telemetry, store, pseudonymiser, experiments, settings, pipeline.personalizer)
    experiment_watcher = ExperimentWatcher(experiments, pipeline, worker.experiment_poll_s)
    checkpoints = ModelCheckpoints(CheckpointStore(redis_client, settings.app_id), pipeline, telemetry,
                                   lambda: counters.accepted)
    stats = StatsPublisher(redis_client, settings.app_id,
                           keys.stats_key(settings.app_id, socket.gethostname(), os.getpid()), telemetry)
    forget = ForgetListener(redis_client, keys.forget_channel(settings.app_id), pipeline)
    catalog = CatalogFollower(kafka, pipeline.personalizer.catalog, CatalogStore(redis_client),
                              publisher=KafkaPublisher(send, kafka.offers_topic, kafka.dead_letter_topic))

    @app.agent(inputs, name="personalize")
    async def personalize(stream: Any) -> None:
        await checkpoints.restore_once()
        collector.install()
        await catalog.ready.wait()  # decide nothing before the catalog is in (an out-of-stock item would slip out)
        async for events in stream.take_events(worker.batch_size, within=worker.batch_window_s):
            records = [RawRecord(e.message.topic, e.message.partition, e.message.offset, e.message.key,
                                 e.message.value, worker.historical_replays and is_historical(e.message.headers))
                       for e in events]
            partitions.read(events)
            try:
                await pipeline.handle(records)
            except BaseException as error:  # cancellation too: see stop_without_committing
                stop_without_committing(error, records)

    @app.timer(worker.checkpoint_interval_s)
    async def periodic_checkpoint() -> None:
        await checkpoints.save("periodic")

    @app.task
    async def rescore_silent_customers() -> None:
        # A task, not a timer: a round may outlast the interval while it catches up after a replay.
        await checkpoints.restored.wait()  # the models a visit learns into must be the restored ones
        while not app.should_stop:
            await rescore_due(pipeline, worker.rescore_budget_s)
            await asyncio.sleep(worker.rescore_interval_s)

    @app.task
    async def freeze_collection_survivors() -> None:
        # A task, not a timer: waiting for the lock through a long batch made Faust warn that the timer overlapped.
        while not app.should_stop:
            await asyncio.sleep(GC_FREEZE_CHECK_S)
            if collector.freeze_due:  # the lock is taken only when there is something to freeze
                async with pipeline.lock:  # between batches: a batch's own objects die with it, unfrozen
                    collector.freeze_if_due()

    @app.task
    async def probe_event_loop() -> None:
        await loop_stalls.run(lambda: bool(app.should_stop))

    @app.timer(STATS_PUBLISH_S)
    async def publish_stats() -> None:
        await stats.publish()

    @app.task
    async def listen_for_forget() -> None:
        await forget.run()

    @app.task
    async def follow_catalog() -> None:
        await catalog.run()

    @app.task
    async def follow_experiments() -> None:
        await experiment_watcher.run()

    @app.task
    async def govern_fetch_wait() -> None:
        governor = FetchWaitGovernor(kafka.fetch_max_wait_ms)
        while not app.should_stop:
            await asyncio.sleep(CHECK_S)
            # A batch in progress (a slow one, or one retrying while Redis is away) is not the broker's doing.
            raised = governor.observe(partitions.records_read, await partitions.records_waiting(app),
                                      busy=pipeline.lock.locked())
            if raised is not None:
                kafka_transport.set_fetch_max_wait(raised)
                log.warning("records wait on the broker but few were fetched for %.0f s: fetch wait raised to %d ms "
                            "(a broker slower to find records than the wait answers empty, as tansu does once a "
                            "partition holds many batches; PERSO_FETCH_MAX_WAIT_MS sets where it starts)",
                            CHECK_S * governor.patience, raised)

    async def on_shutdown(sender: Any, *args: Any, **kwargs: Any) -> None:
        # Sent by Faust after the consumer has stopped: the models hold everything processed.
        await checkpoints.save_at_shutdown()
        await stats.remove()
        collector.remove()

    async def on_revoked(sender: Any, revoked: Any = (), **kwargs: Any) -> None:
        # Another worker may own these customers now: re-read them from Redis when they come back.
        try:
            await pipeline.partitions_revoked()
        except UnsavedAtRevocation as error:
            stop_unsaved_at_revocation(error)
        partitions.revoked(revoked)

    async def on_assigned(sender: Any, assigned: Any = (), **kwargs: Any) -> None:
        partitions.assigned(assigned)

    app.on_before_shutdown.connect(on_shutdown)  # type: ignore[arg-type]
    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]
    return app


def _unread(app: faust.App, topic: str, partition: int, next_offset: int | None) -> bool:
    """Whether records of an input partition this worker owns wait unprocessed: its end offset as of the last
    fetch beyond the next offset to process (`next_offset`; before any record was processed, the committed
    offset). A partition not fetched yet may hold anything: it counts as unread. One not owned does not."""
    tp = TP(topic, partition)
    try:
        if tp not in app.consumer.assignment():
            return False
        end = app.consumer.highwater(tp)
    except Exception:  # the consumer is not started yet
        return False
    if end is None:
        return True
    if next_offset is None:
        # Faust keeps the committed offsets it seeks to on assignment (faust-streaming 0.15 has no public reader;
        # None stands for 0 there).
        next_offset = app.consumer._committed_offset.get(tp) or 0  # type: ignore[attr-defined]
    return bool(end > next_offset)
