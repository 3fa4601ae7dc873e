"""The workers' stats hashes: written by each worker every second, read by `perso status` and the dashboard.

Readers find the hashes through a sorted set of their keys scored by the time each was last written
(`keys.workers_key`), not by a SCAN: a SCAN walks the whole keyspace (millions of customer keys), and the
dashboard asked for it every 5 s in every worker, which took 5-12 s a time on a soak's Redis and slowed the worker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from streams.storage import keys

STATS_TTL_S = 120  # a hash not refreshed this long belongs to a worker that is gone


def write(pipe: Any, app_id: str, key: str, fields: dict[str, Any], now: float | None = None) -> None:
    """Queue the writes of one worker's stats on a pipeline: the hash, its expiry, and its place in the set."""
    pipe.hset(key, mapping=fields)
    pipe.expire(key, STATS_TTL_S)
    pipe.zadd(keys.workers_key(app_id), {key: time.time() if now is None else now})


async def remove(client: aioredis.Redis, app_id: str, key: str) -> None:
    """A stopped worker's stats: gone, so it does not look alive."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        pipe.zrem(keys.workers_key(app_id), key)
        await pipe.execute()


async def read_all(client: aioredis.Redis, app_id: str) -> list[tuple[str, dict[str, bytes]]]:
    """Every live worker's stats, as (name, fields): the name is the key without the app's prefix. Entries of
    workers that stopped refreshing are dropped from the set on the way."""
    registry = keys.workers_key(app_id)
    cutoff = time.time() - STATS_TTL_S
    async with client.pipeline(transaction=False) as pipe:
        pipe.zremrangebyscore(registry, "-inf", f"({cutoff}")
        pipe.zrange(registry, 0, -1)
        _, members = await pipe.execute()
    if not members:
        return []
    names = [member.decode() if isinstance(member, bytes) else str(member) for member in members]
    async with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(name)
        hashes = await pipe.execute()
    prefix = keys.stats_prefix(app_id)
    found = []
    for name, raw in zip(names, hashes, strict=True):
        if raw:  # expired or removed since it was listed
            found.append((name.removeprefix(prefix), {k.decode(): v for k, v in raw.items()}))
    return sorted(found)


@dataclass(frozen=True)
class WorkerStats:
    """One worker's stats hash decoded: its counters and timings as numbers, its JSON fields parsed."""

    name: str
    values: dict[str, float]
    dead_letter_reasons: dict[str, int]
    health: dict[str, Any]
    batch_failures: dict[str, int]
    web_url: str | None


def decode(name: str, fields: dict[str, bytes]) -> WorkerStats:
    """A hash as `read_all` returns it, for `perso status` and the dashboard.

    >>> decode("host:1", {"records": b"5", "health": b'{"status": "ok"}', "web_url": b""}).values
    {'records': 5.0}
    """
    rest = dict(fields)
    reasons = orjson.loads(rest.pop("dead_letter_reasons", b"{}"))
    health = orjson.loads(rest.pop("health", b"{}"))
    failures = orjson.loads(rest.pop("batch_failures", b"{}"))
    web_url = rest.pop("web_url", b"").decode() or None
    return WorkerStats(name, {k: float(v) for k, v in rest.items()}, reasons, health, failures, web_url)
