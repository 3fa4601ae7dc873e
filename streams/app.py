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
from typing import Any

import faust
import orjson

from models.personalizer import Personalizer
from schemas.dead_letter import DeadLetter
from schemas.offers import Offer
from streams import kafka_transport
from streams.checkpoints import CheckpointStore
from streams.pipeline import BatchPipeline, RawRecord
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
    )
    # Raw bytes in: validation is ours (pydantic), and dead letters keep the original bytes.
    inputs = app.topic(*settings.input_topics, partitions=settings.partitions, key_serializer="raw",
                       value_serializer="raw")

    redis_client = redis_async(settings)
    store = ProfileStore(redis_client, ttl_s=settings.profile_ttl_days * 86_400,
                         retry_max_s=settings.redis_retry_max_s, dedup_window=settings.dedup_window)
    pseudonymiser = Pseudonymiser(settings.pseudonymise_key_bytes)

    async def publish(offers: Sequence[Offer], dead: Sequence[DeadLetter]) -> None:
        # Straight to the producer: Faust's Topic.send adds a channel, a pending message and a callback per
        # record (6% of the worker under py-spy, half the offers' cost).
        producer = app.producer
        pending = []
        for offer in offers:
            pending.append(await producer.send(settings.offers_topic, offer.customer_id.encode(),
                                               offer.__pydantic_serializer__.to_json(offer), None, None, None))
        for letter in dead:
            key = letter.key.encode() if letter.key is not None else None
            pending.append(await producer.send(settings.dead_letter_topic, key,
                                               letter.__pydantic_serializer__.to_json(letter), None, None, None))
        # Wait for broker acknowledgement before Redis is written and the input offsets are acked.
        await asyncio.gather(*pending)

    cache = StateCache(capacity=max(settings.state_cache_capacity, settings.state_cache_hot),
                       hot=settings.state_cache_hot)
    pipeline = BatchPipeline(Personalizer(settings.model_config_()), store, publish, settings.topic_kind,
                             cache=cache, pseudonymiser=pseudonymiser)
    app.personalization_pipeline = pipeline  # type: ignore[attr-defined]
    telemetry = WorkerTelemetry(pipeline, store)
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
            size = await checkpoints.save(pipeline.personalizer)
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
            await pipeline.handle(records)

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
        snapshot: dict[str, float | bytes] = dict(telemetry.snapshot())
        snapshot["dead_letter_reasons"] = orjson.dumps(pipeline.stats.dead_letter_reasons)
        with contextlib.suppress(Exception):  # stats must never stop the worker
            async with redis_client.pipeline(transaction=True) as pipe:
                pipe.hset(stats_key, mapping=snapshot)  # type: ignore[arg-type]
                pipe.expire(stats_key, STATS_TTL_S)
                await pipe.execute()
        if time.monotonic() - last_logged < STATS_LOG_S:
            return
        last_logged = time.monotonic()
        s = pipeline.stats
        log.info("processed records=%d accepted=%d (%.0f/s) offers=%d dead_letters=%d duplicates=%d cached=%d "
                 "last_offer_latency_ms=%.1f", s.records, s.accepted, telemetry.events_per_s, s.offers,
                 s.dead_letters, s.duplicates, len(pipeline.cache), s.last_offer_latency_s * 1000)

    return app
