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
import logging
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

import faust
import orjson
import redis.asyncio as aioredis

from models.personalizer import Personalizer
from schemas.dead_letter import DeadLetter
from schemas.offers import Offer
from streams import kafka_transport
from streams.checkpoints import CheckpointStore
from streams.pipeline import BatchPipeline, RawRecord
from streams.profile_store import ProfileStore
from streams.settings import Settings

log = logging.getLogger(__name__)
STATS_PUBLISH_S = 1.0
STATS_LOG_S = 10.0


def create_app(settings: Settings) -> faust.App:
    kafka_transport.install(settings.fetch_max_wait_ms)
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
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
        web_enabled=settings.web_enabled,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
    )
    # Raw bytes in and out: validation is ours (pydantic), and dead letters keep the original bytes.
    def raw_topic(*names: str) -> faust.TopicT:
        return app.topic(*names, partitions=settings.partitions, key_serializer="raw", value_serializer="raw")

    inputs = raw_topic(*settings.input_topics)
    offers_topic = raw_topic(settings.offers_topic)
    dead_topic = raw_topic(settings.dead_letter_topic)

    redis_client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    store = ProfileStore(redis_client, ttl_s=settings.profile_ttl_days * 86_400,
                         retry_max_s=settings.redis_retry_max_s)

    async def publish(offers: Sequence[Offer], dead: Sequence[DeadLetter]) -> None:
        pending = []
        for offer in offers:
            pending.append(await offers_topic.send(key=offer.customer_id.encode(),
                                                   value=orjson.dumps(offer.model_dump(mode="json"))))
        for letter in dead:
            key = letter.key.encode() if letter.key is not None else None
            pending.append(await dead_topic.send(key=key, value=orjson.dumps(letter.model_dump(mode="json"))))
        # Wait for broker acknowledgement before Redis is written and the input offsets are acked.
        await asyncio.gather(*pending)

    pipeline = BatchPipeline(Personalizer(settings.model_config_()), store, publish, settings.topic_kind)
    app.personalization_pipeline = pipeline  # type: ignore[attr-defined]
    checkpoints = CheckpointStore(redis_client, settings.app_id)
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
        log.info("model checkpoint saved (%s): %d bytes", why, size)

    @app.agent(inputs, name="personalize")
    async def personalize(stream: Any) -> None:
        if not restored.is_set():
            # Once per process: an agent restarted after a crash keeps what it has learned since.
            await checkpoints.restore(pipeline.personalizer)
            restored.set()
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

    app.on_before_shutdown.connect(checkpoint_on_shutdown)  # type: ignore[arg-type]

    async def forget_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        pipeline.cache.clear()

    app.on_partitions_revoked.connect(forget_revoked)  # type: ignore[arg-type]

    stats_key = f"perso:stats:{settings.app_id}:{socket.gethostname()}:{os.getpid()}"
    last_logged = 0.0

    @app.timer(STATS_PUBLISH_S)
    async def report() -> None:
        # Counters in Redis for `status` and the benchmarks; a log line every STATS_LOG_S.
        nonlocal last_logged
        s = pipeline.stats
        counters = {"records": s.records, "accepted": s.accepted, "offers": s.offers, "batches": s.batches,
                    "dead_letters": s.dead_letters, "duplicates": s.duplicates, "updated_at": time.time()}
        with contextlib.suppress(Exception):  # stats must never stop the worker
            await redis_client.hset(stats_key, mapping=counters)  # type: ignore[arg-type]
            await redis_client.expire(stats_key, 3600)
        if time.monotonic() - last_logged < STATS_LOG_S:
            return
        last_logged = time.monotonic()
        log.info("processed records=%d accepted=%d offers=%d dead_letters=%d duplicates=%d cached=%d "
                 "last_offer_latency_ms=%.1f", s.records, s.accepted, s.offers, s.dead_letters,
                 s.duplicates, len(pipeline.cache), s.last_offer_latency_s * 1000)

    return app
