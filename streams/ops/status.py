"""`perso status`: consumer lag, each worker's figures and health, Redis's condition, the checkpoint's age.
No printing here: the CLI formats.

Consumer lag is read with a plain aiokafka consumer in the app's group that never subscribes or commits
(OffsetFetch and fetches only), so it does not disturb running workers.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.experiments import ExperimentConfig
from streams.security import kafka_options, redis_async, start_or_close
from streams.settings import Settings
from streams.storage import worker_stats
from streams.storage.checkpoints import CheckpointStore
from streams.storage.experiments import ExperimentStore

# A worker whose stats hash is older than this is not running (it refreshes every second).
WORKER_ALIVE_S = 5.0
# How long status waits for a fetch to report each partition's high watermark.
HIGHWATER_WAIT_S = 3.0


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
    health: dict[str, Any] = field(default_factory=dict)
    batch_failures: dict[str, int] = field(default_factory=dict)
    web_url: str | None = None
    # Asked over HTTP when the stats hash is stale (a worker cannot write it while Redis refuses writes).
    live_health: dict[str, Any] | None = None

    @property
    def alive(self) -> bool:
        return self.age_s <= WORKER_ALIVE_S

    @property
    def degraded(self) -> bool:
        current = self.live_health if self.live_health is not None else self.health
        return current.get("status", "ok") != "ok"


@dataclass
class RedisCondition:
    """What Redis says of itself: whether workers can write to it."""

    reachable: bool
    error: str | None = None
    role: str | None = None
    used_memory: int = 0
    maxmemory: int = 0
    policy: str | None = None
    oom_refusals: int = 0  # writes Redis refused for memory since it started (INFO errorstats)

    @property
    def out_of_memory(self) -> bool:
        # Within 10% of the limit rather than at it: the refused write's own request is what pushes Redis over,
        # so between attempts it reads just below.
        return self.maxmemory > 0 and self.used_memory >= 0.9 * self.maxmemory and self.policy == "noeviction"

    @property
    def read_only(self) -> bool:
        return self.role not in (None, "master")

    @property
    def problem(self) -> str | None:
        if not self.reachable:
            return f"unreachable: {self.error}"
        if self.out_of_memory:
            return (f"out of memory: {self.used_memory:,} bytes used of maxmemory {self.maxmemory:,} with policy "
                    f"noeviction, writes that need more are refused ({self.oom_refusals:,} so far); raise maxmemory "
                    "or free memory")
        if self.read_only:
            return f"a read-only {self.role}: writes are refused (promote it, or point PERSO_REDIS_URL at the primary)"
        return None


@dataclass
class StatusReport:
    lag: list[PartitionLag]
    workers: list[WorkerReport]
    checkpoint_age_s: float | None
    redis: RedisCondition = field(default_factory=lambda: RedisCondition(True))
    experiment: ExperimentConfig | None = None  # the running one

    @property
    def healthy(self) -> bool:
        return self.redis.problem is None and not any(w.degraded for w in self.workers if w.alive or w.live_health)

    @property
    def total_lag(self) -> int:
        return sum(p.lag for p in self.lag)


async def worker_reports(client: aioredis.Redis, app_id: str) -> list[WorkerReport]:
    reports = []
    now = time.time()
    for name, fields in await worker_stats.read_all(client, app_id):
        stats = worker_stats.decode(name, fields)
        reports.append(WorkerReport(name, now - stats.values.get("updated_at", 0.0), stats.values,
                                    stats.dead_letter_reasons, stats.health, stats.batch_failures, stats.web_url))
    return sorted(reports, key=lambda r: r.name)


async def redis_condition(client: aioredis.Redis) -> RedisCondition:
    try:
        memory = await client.info("memory")
        replication = await client.info("replication")
        errors = await client.info("errorstats")
    except Exception as error:  # reported, not raised: status is what an operator runs when things are wrong
        return RedisCondition(False, error=f"{type(error).__name__}: {error}")
    oom = errors.get("errorstat_OOM", {})
    return RedisCondition(True, role=str(replication.get("role")), used_memory=int(memory.get("used_memory", 0)),
                          maxmemory=int(memory.get("maxmemory", 0)), policy=str(memory.get("maxmemory_policy")),
                          oom_refusals=int(oom.get("count", 0)) if isinstance(oom, dict) else 0)


async def ask_health(url: str, timeout_s: float = 2.0) -> dict[str, Any] | None:
    """A worker's /health answer (its body also comes with a 503), or None when it does not answer."""

    def fetch() -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=timeout_s) as response:
                return dict(orjson.loads(response.read()))
        except urllib.error.HTTPError as error:
            try:
                return dict(orjson.loads(error.read()))
            except orjson.JSONDecodeError:
                return None
        except (OSError, orjson.JSONDecodeError):
            return None

    return await asyncio.to_thread(fetch)


async def consumer_lag(settings: Settings) -> list[PartitionLag]:
    """Committed offset and end offset of every input partition, for the app's consumer group.

    The end offset is the high watermark a fetch reports, not ListOffsets: tansu answers ListOffsets with the
    first offset of a partition's last record batch, which made a backlog sent in one batch read as lag 0.
    """
    consumer = AIOKafkaConsumer(**kafka_options(settings.kafka), group_id=settings.app_id,
                                enable_auto_commit=False)
    await start_or_close(consumer)
    try:
        partitions = input_partitions(consumer, settings)
        committed = {tp: await consumer.committed(tp) for tp in partitions}
        ends = await _high_watermarks(consumer, partitions)
        return [PartitionLag(tp.topic, tp.partition, committed[tp], ends[tp]) for tp in partitions]
    finally:
        await consumer.stop()


async def _high_watermarks(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    listed = await consumer.end_offsets(partitions)
    consumer.assign(partitions)
    for tp in partitions:  # this consumer commits nothing: positions are only where its fetches start
        consumer.seek(tp, max(0, listed[tp] - 1))
    deadline = time.monotonic() + HIGHWATER_WAIT_S
    highs: dict[TopicPartition, int] = {}
    while len(highs) < len(partitions) and time.monotonic() < deadline:
        await consumer.getmany(timeout_ms=200, max_records=1)
        highs.update({tp: h for tp in partitions if (h := consumer.highwater(tp)) is not None})
    return {tp: max(listed[tp], highs.get(tp, listed[tp])) for tp in partitions}


async def status(settings: Settings) -> StatusReport:
    client = redis_async(settings.redis)
    try:
        condition = await redis_condition(client)
        workers = await worker_reports(client, settings.app_id) if condition.reachable else []
        saved_at = await CheckpointStore(client, settings.app_id).saved_at() if condition.reachable else None
        experiment = await ExperimentStore(client).running() if condition.reachable else None
    finally:
        await client.aclose()
    stale = [w for w in workers if not w.alive and w.web_url]
    for worker, answer in zip(stale, await asyncio.gather(*(ask_health(w.web_url or "") for w in stale)),
                              strict=True):
        worker.live_health = answer
    lag = await consumer_lag(settings)
    return StatusReport(lag, workers, time.time() - saved_at if saved_at is not None else None, condition,
                        experiment)


def input_partitions(consumer: AIOKafkaConsumer, settings: Settings) -> list[TopicPartition]:
    partitions = []
    for topic in settings.kafka.input_topics:
        numbers = consumer.partitions_for_topic(topic)
        if not numbers:
            raise OperationRefused(f"topic {topic!r} does not exist on {settings.kafka.bootstrap_servers}")
        partitions += [TopicPartition(topic, n) for n in sorted(numbers)]
    return partitions
