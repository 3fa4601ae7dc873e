"""Read the offers (or dead-letter) topic without joining a consumer group: for people and tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.security import kafka_options, start_or_close
from streams.settings import KafkaSettings


async def follow_topic(settings: KafkaSettings, topic: str, from_beginning: bool = False,
                       idle_timeout_s: float | None = None) -> AsyncIterator[dict[str, Any]]:
    """Yield decoded JSON records of `topic` as they arrive; stop after idle_timeout_s without one."""
    # The worker's short fetch wait: some brokers (tansu) hold a fetch for the whole wait even when records
    # arrive, and the latency benchmark measures offers when this consumer receives them.
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False, group_id=None,
                                fetch_max_wait_ms=settings.fetch_max_wait_ms)
    await start_or_close(consumer)
    try:
        partitions = None
        for _ in range(50):
            partitions = consumer.partitions_for_topic(topic)
            if partitions:
                break
            await consumer.topics()  # refresh metadata until the topic exists
            await asyncio.sleep(0.2)
        if not partitions:
            raise RuntimeError(f"topic {topic!r} does not exist on {settings.bootstrap_servers}")
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        if from_beginning:
            await consumer.seek_to_beginning(*assigned)
        else:
            await consumer.seek_to_end(*assigned)
        last = time.monotonic()
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            records = [r for rs in batch.values() for r in rs]
            for record in records:
                yield orjson.loads(record.value) if record.value else {}
            if records:
                last = time.monotonic()
            elif idle_timeout_s is not None and time.monotonic() - last > idle_timeout_s:
                return
    finally:
        await consumer.stop()
