"""Operator actions behind `perso status`, `perso rebuild` and `perso forget`. No printing here: the CLI formats.

Consumer lag is read with a plain aiokafka consumer in the app's group that never subscribes (OffsetFetch
and ListOffsets only), so it does not disturb running workers. Resetting the group's offsets has to commit
as a group member; the group's protocol is Faust's ("faust" assignor), so a one-shot member joins with a
round-robin assignor under that name, takes every partition, commits, and leaves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from streams.checkpoints import CheckpointStore
from streams.privacy import Pseudonymiser
from streams.profile_store import customer_keys
from streams.security import kafka_options, redis_async
from streams.settings import Settings

# A worker whose stats hash is older than this is not running (it refreshes every second).
WORKER_ALIVE_S = 5.0
DERIVED_KEY_PATTERNS = ("state:*", "profile:*", "seen:*")
UNLINK_BATCH = 1000


class OperationRefused(Exception):
    """The action would be unsafe now (for example: workers still running)."""


@dataclass
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def lag(self) -> int:
        # Clamp: tansu reports the end offset as the start of its last batch, which can be below committed.
        return max(0, self.end - (self.committed or 0))


@dataclass
class WorkerReport:
    name: str
    age_s: float
    values: dict[str, float]
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        return self.age_s <= WORKER_ALIVE_S


@dataclass
class StatusReport:
    lag: list[PartitionLag]
    workers: list[WorkerReport]
    checkpoint_age_s: float | None

    @property
    def total_lag(self) -> int:
        return sum(p.lag for p in self.lag)


async def worker_reports(client: aioredis.Redis, app_id: str) -> list[WorkerReport]:
    reports = []
    now = time.time()
    async for key in client.scan_iter(match=f"perso:stats:{app_id}:*", count=100):
        raw: dict[bytes, bytes] = await client.hgetall(key)  # type: ignore[assignment]
        fields = {k.decode(): v for k, v in raw.items()}
        reasons = orjson.loads(fields.pop("dead_letter_reasons", b"{}"))
        values = {k: float(v) for k, v in fields.items()}
        name = key.decode().removeprefix(f"perso:stats:{app_id}:")
        reports.append(WorkerReport(name, now - values.get("updated_at", 0.0), values, reasons))
    return sorted(reports, key=lambda r: r.name)


async def consumer_lag(settings: Settings) -> list[PartitionLag]:
    consumer = AIOKafkaConsumer(**kafka_options(settings), group_id=settings.app_id,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = _input_partitions(consumer, settings)
        ends = await consumer.end_offsets(partitions)
        return [PartitionLag(tp.topic, tp.partition, await consumer.committed(tp), ends[tp]) for tp in partitions]
    finally:
        await consumer.stop()


async def status(settings: Settings) -> StatusReport:
    client = redis_async(settings)
    try:
        workers = await worker_reports(client, settings.app_id)
        saved_at = await CheckpointStore(client, settings.app_id).saved_at()
    finally:
        await client.aclose()
    lag = await consumer_lag(settings)
    return StatusReport(lag, workers, time.time() - saved_at if saved_at is not None else None)


async def forget_customer(settings: Settings, customer_id: str) -> tuple[str, int, int]:
    """Delete a customer's profile, state and remembered event ids; tell running workers to drop their copy.

    Returns (id as stored, keys deleted, workers notified). Input topics still hold the raw events until
    their retention expires: a rebuild within that time brings the customer back.
    """
    stored_id = Pseudonymiser(settings.pseudonymise_key_bytes).apply(customer_id)
    client = redis_async(settings)
    try:
        deleted = int(await client.delete(*customer_keys(stored_id)))
        notified = int(await client.publish(settings.forget_channel, stored_id))
    finally:
        await client.aclose()
    return stored_id, deleted, notified


async def rebuild(settings: Settings, to: str = "earliest") -> dict[str, Any]:
    """Delete all derived state (profiles, states, event-id windows, model checkpoint) and move the group's
    offsets to the beginning of the input topics, so the next workers recompute everything in one pass.

    With to="latest" the offsets go to the end instead: for rebuilding from a replayed file rather than
    from what the topics retain. Refuses while a worker of the group reports itself alive.
    """
    client = redis_async(settings)
    try:
        alive = [w.name for w in await worker_reports(client, settings.app_id) if w.alive]
        if alive:
            raise OperationRefused(f"workers of {settings.app_id!r} are running ({', '.join(alive)}); "
                                   "stop them first: their in-memory state would be written back")
        offsets = await reset_group_offsets(settings, to)
        deleted = {pattern: await _unlink_matching(client, pattern) for pattern in DERIVED_KEY_PATTERNS}
        deleted["checkpoint"] = await CheckpointStore(client, settings.app_id).delete()
        deleted["stats"] = await _unlink_matching(client, f"perso:stats:{settings.app_id}:*")
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
    consumer = AIOKafkaConsumer(
        *settings.input_topics, **kafka_options(settings), group_id=settings.app_id,
        enable_auto_commit=False, partition_assignment_strategy=(_FaustNamedRoundRobin,),
        session_timeout_ms=int(settings.session_timeout_s * 1000),
        heartbeat_interval_ms=int(settings.heartbeat_interval_s * 1000))
    await consumer.start()
    try:
        expected = set(_input_partitions(consumer, settings))
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


def _input_partitions(consumer: AIOKafkaConsumer, settings: Settings) -> list[TopicPartition]:
    partitions = []
    for topic in settings.input_topics:
        numbers = consumer.partitions_for_topic(topic)
        if not numbers:
            raise OperationRefused(f"topic {topic!r} does not exist on {settings.bootstrap_servers}")
        partitions += [TopicPartition(topic, n) for n in sorted(numbers)]
    return partitions


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
