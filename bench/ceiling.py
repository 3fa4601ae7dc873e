"""The ceiling: raw aiokafka produce and consume rates on the configured broker, no validation, no models.

    python bench/ceiling.py [--events 200000] [--size 300]

Runs against PERSO_BROKER_URL (start it with `perso stack up`); uses a fresh 4-partition topic each run.
Produces --events records of --size bytes (a typical event is 250-350 bytes of JSON) as fast as one
aiokafka producer can with acks=all, then consumes them all with one consumer (getmany batches), the way
the worker reads. Prints the figures on the last lines and writes bench/results/ceiling.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from streams.security import kafka_options  # noqa: E402
from streams.settings import KafkaSettings  # noqa: E402

ACK_WINDOW = 10_000


async def produce(settings: KafkaSettings, topic: str, events: int, size: int) -> float:
    producer = AIOKafkaProducer(**kafka_options(settings), acks="all", linger_ms=10, max_batch_size=256 * 1024,
                                enable_idempotence=False)
    await producer.start()
    payload = b"x" * size
    keys = [f"c{n:06d}".encode() for n in range(10_000)]
    started = time.perf_counter()
    pending = []
    for n in range(events):
        pending.append(await producer.send(topic, payload, key=keys[n % len(keys)]))
        if len(pending) >= ACK_WINDOW:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    seconds = time.perf_counter() - started
    await producer.stop()
    return seconds


async def consume(settings: KafkaSettings, topic: str, events: int) -> float:
    consumer = AIOKafkaConsumer(**kafka_options(settings), group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=settings.fetch_max_wait_ms, max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    seen = 0
    started = time.perf_counter()
    while seen < events:
        batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
        seen += sum(len(records) for records in batch.values())
    seconds = time.perf_counter() - started
    await consumer.stop()
    return seconds


async def main(events: int, size: int) -> dict[str, float]:
    settings = KafkaSettings()
    topic = f"bench-ceiling-{uuid.uuid4().hex[:6]}"
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=settings.partitions, replication_factor=1)])
    await admin.close()
    produce_s = await produce(settings, topic, events, size)
    consume_s = await consume(settings, topic, events)
    return {"events": events, "record_bytes": size, "produce_per_s": round(events / produce_s),
            "consume_per_s": round(events / consume_s)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=300)
    args = parser.parse_args()
    result = asyncio.run(main(args.events, args.size))
    out = ROOT / "bench" / "results" / "ceiling.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    print(f"ceiling: produce {result['produce_per_s']:,} records/s, consume {result['consume_per_s']:,} records/s "
          f"({args.size}-byte records, one client each)")
