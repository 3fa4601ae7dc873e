"""Property-based: random and mutated batches through the real pipeline (real Redis, real broker).

Invariants, for any batch: every record is accounted for (accepted + duplicates + dead letters), every dead
letter names a known reason and keeps the original bytes, each customer's profile counts exactly the
distinct valid events it was sent, and handling the same batch again changes nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.personalizer import Personalizer
from schemas.dead_letter import DeadLetter
from schemas.events import EventRejected, parse_event
from streams.security import kafka_options, redis_async
from streams.settings import Settings
from streams.storage.customer_store import RedisCustomerStore
from streams.worker.contracts import RawRecord
from streams.worker.pipeline import BatchPipeline
from streams.worker.publisher import KafkaPublisher
from streams.worker.sensors import BatchCounters
from tests.integration.conftest import changed
from tests.strategies import MUTATIONS, record

KNOWN_REASONS = {r for r in MUTATIONS.values() if r}


async def run_batch_twice(stack: Settings, records: list[RawRecord]) -> dict[str, Any]:
    settings = changed(stack, redis_url=stack.redis.redis_url.rsplit("/", 1)[0] + "/9")
    client = redis_async(settings.redis)
    producer = AIOKafkaProducer(**kafka_options(settings.kafka), acks="all")
    await producer.start()
    dead_seen: list[DeadLetter] = []

    async def send(topic: str, key: bytes | None, value: bytes) -> Any:
        if topic == settings.kafka.dead_letter_topic:
            dead_seen.append(DeadLetter.model_validate_json(value))
        return await producer.send(topic, value, key=key)

    try:
        counters = BatchCounters()
        publisher = KafkaPublisher(send, settings.kafka.offers_topic, settings.kafka.dead_letter_topic)
        pipeline = BatchPipeline(Personalizer(), RedisCustomerStore(client), publisher, settings.kafka.kind_of_topic,
                                 sensors=[counters])
        await pipeline.handle(records)
        first = {"accepted": counters.accepted, "duplicates": counters.duplicates,
                 "dead": counters.dead_letters, "records": counters.records}
        await pipeline.handle(records)
        customers = {r.key.decode() for r in records if r.key}
        profiles = {c: await client.hgetall(f"profile:{c}") for c in customers}
        return {"first": first, "stats": counters, "dead": dead_seen, "profiles": profiles}
    finally:
        await producer.stop()
        await client.aclose()


@given(batch=st.lists(record(), min_size=1, max_size=40), repeats=st.lists(st.integers(0, 39), max_size=10))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_batch_is_fully_accounted_for_and_applied_once(stack: Settings, batch: list[Any],
                                                            repeats: list[int]) -> None:
    run = uuid.uuid4().hex[:8]  # fresh customers per example: Redis keeps earlier examples' profiles
    records: list[RawRecord] = []
    for n, (kind, raw, body, _) in enumerate(batch):
        raw = raw.replace(body["customer_id"].encode(), f"{run}-{body['customer_id']}".encode())
        topic = stack.kafka.purchases_topic if kind == "purchases" else stack.kafka.clickstream_topic
        records.append(RawRecord(topic, 0, n, f"{run}-{body['customer_id']}".encode(), raw))
    records += [records[i] for i in repeats if i < len(records)]  # redelivered copies

    # What should be applied: the distinct event ids that validate, per customer.
    valid: dict[str, set[str]] = {}
    invalid = 0
    for r in records:
        try:
            event = parse_event(stack.kafka.kind_of_topic(r.topic), r.value or b"", r.key)
        except EventRejected:
            invalid += 1
            continue
        valid.setdefault(event.customer_id, set()).add(event.event_id)
    distinct_valid = sum(len(ids) for ids in valid.values())

    result = asyncio.run(run_batch_twice(stack, records))
    first, stats = result["first"], result["stats"]
    assert first["records"] == len(records) == first["accepted"] + first["duplicates"] + first["dead"]
    assert first["accepted"] == distinct_valid and first["dead"] == invalid
    # Again: nothing new applied, every valid record a duplicate, invalid ones dead-lettered again.
    assert stats.accepted == distinct_valid
    assert stats.duplicates == first["duplicates"] + (len(records) - invalid)
    for letter in result["dead"]:
        assert letter.reason in KNOWN_REASONS
        assert any((r.value or b"").decode("utf-8", "replace") == letter.payload or letter.payload_encoding == "base64"
                   for r in records if r.offset == letter.offset)
    for customer, ids in valid.items():
        assert int(result["profiles"][customer][b"events"]) == len(ids)
