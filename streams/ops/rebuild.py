"""`perso rebuild`: delete every derived state and move the consumer group back, with the workers stopped.

Resetting the group's offsets has to commit as a group member; the group's protocol is Faust's ("faust"
assignor), so a one-shot member joins with a round-robin assignor under that name, takes every partition,
commits, and leaves.
"""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from streams.ops.status import OperationRefused, input_partitions, worker_reports
from streams.security import kafka_options, redis_async, start_or_close
from streams.settings import Settings
from streams.storage import keys
from streams.storage.checkpoints import CheckpointStore

UNLINK_BATCH = 1000


async def rebuild(settings: Settings, to: str = "earliest") -> dict[str, Any]:
    """Delete all derived state (profiles, states, event-id windows, model checkpoint) and move the group's
    offsets to the beginning of the input topics, so the next workers recompute everything in one pass.

    With to="latest" the offsets go to the end instead: for rebuilding from a replayed file rather than
    from what the topics retain. Refuses while a worker of the group reports itself alive.
    """
    client = redis_async(settings.redis)
    try:
        alive = [w.name for w in await worker_reports(client, settings.app_id) if w.alive]
        if alive:
            raise OperationRefused(f"workers of {settings.app_id!r} are running ({', '.join(alive)}); "
                                   "stop them first: their in-memory state would be written back")
        offsets = await reset_group_offsets(settings, to)
        deleted = {pattern: await _unlink_matching(client, pattern) for pattern in keys.DERIVED_KEY_PATTERNS}
        deleted["checkpoint"] = await CheckpointStore(client, settings.app_id).delete()
        deleted["stats"] = await _unlink_matching(client, keys.stats_prefix(settings.app_id) + "*")
        deleted["stats"] += int(await client.unlink(keys.workers_key(settings.app_id)))
    finally:
        await client.aclose()
    return {"offsets": {f"{tp.topic}/{tp.partition}": off for tp, off in sorted(offsets.items())},
            "deleted_keys": deleted}


class _FaustNamedRoundRobin(RoundRobinPartitionAssignor):
    # Joining a group must name a protocol its members share; Faust workers use "faust".
    name = "faust"


async def reset_group_offsets(settings: Settings, to: str, timeout_s: float = 60.0) -> dict[TopicPartition, int]:
    if to not in ("earliest", "latest"):
        raise ValueError(f"to must be 'earliest' or 'latest', not {to!r}")
    kafka = settings.kafka
    consumer = AIOKafkaConsumer(
        *kafka.input_topics, **kafka_options(kafka), group_id=settings.app_id,
        enable_auto_commit=False, partition_assignment_strategy=(_FaustNamedRoundRobin,),
        session_timeout_ms=int(kafka.session_timeout_s * 1000),
        heartbeat_interval_ms=int(kafka.heartbeat_interval_s * 1000))
    await start_or_close(consumer)
    try:
        expected = set(input_partitions(consumer, settings))
        deadline = time.monotonic() + timeout_s
        while consumer.assignment() != expected:
            if time.monotonic() > deadline:
                raise OperationRefused(f"could not take all {len(expected)} input partitions within {timeout_s:.0f}s "
                                       f"(have {len(consumer.assignment())}): is another consumer in the group?")
            await consumer.getmany(timeout_ms=200, max_records=1)
        partitions = sorted(expected)
        targets = await (consumer.beginning_offsets(partitions) if to == "earliest"
                         else consumer.end_offsets(partitions))
        await consumer.commit(dict(targets))
        return dict(targets)
    finally:
        await consumer.stop()


async def _unlink_matching(client: aioredis.Redis, pattern: str) -> int:
    removed = 0
    batch: list[bytes] = []
    async for key in client.scan_iter(match=pattern, count=UNLINK_BATCH):
        batch.append(key)
        if len(batch) >= UNLINK_BATCH:
            removed += int(await client.unlink(*batch))
            batch.clear()
    if batch:
        removed += int(await client.unlink(*batch))
    return removed
