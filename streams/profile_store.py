"""Redis persistence: customer state, the readable profile and the applied event ids, in one transaction."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from models.features import CustomerState
from schemas.events import CustomerEvent
from schemas.profile import ProfileUpdate
from streams.dedup import SeenWindow

log = logging.getLogger(__name__)
T = TypeVar("T")


def state_key(customer_id: str) -> str:
    return f"state:{customer_id}"


def profile_key(customer_id: str) -> str:
    return f"profile:{customer_id}"


def seen_key(customer_id: str) -> str:
    return f"seen:{customer_id}"


def customer_keys(customer_id: str) -> list[str]:
    """Every key that holds something about one customer (what `forget` deletes)."""
    return [state_key(customer_id), profile_key(customer_id), seen_key(customer_id)]


class ProfileStore:
    """`state:{id}` holds the worker's full per-customer state (JSON); `profile:{id}` is the hash websites and
    messaging services read; `seen:{id}` remembers the ids of the events applied (sorted set by event time,
    the newest `dedup_window` kept). All three change in one MULTI/EXEC, so the event ids remembered always
    match the counters they produced.
    """

    def __init__(self, client: aioredis.Redis, ttl_s: float = 0, retry_max_s: float = 5.0,
                 dedup_window: int = 10_000) -> None:
        self.client = client
        self.ttl_s = int(ttl_s)
        self.retry_max_s = retry_max_s
        self.dedup_window = dedup_window
        self.unavailable_since: float | None = None

    async def load(self, customer_ids: Sequence[str], event_ids: dict[str, list[str]]
                   ) -> tuple[dict[str, CustomerState], dict[str, SeenWindow]]:
        """States of `customer_ids` and, for each customer in `event_ids`, which of those ids were applied.

        One round trip for the whole batch: a pipeline of MGET and per-customer ZMSCORE/ZCARD/ZRANGE.
        """
        if not customer_ids and not event_ids:
            return {}, {}
        customers = list(event_ids)

        async def read() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                if customer_ids:
                    pipe.mget([state_key(c) for c in customer_ids])
                for customer in customers:
                    key = seen_key(customer)
                    pipe.zmscore(key, event_ids[customer])
                    pipe.zcard(key)
                    pipe.zrange(key, 0, 0, withscores=True)
                return await pipe.execute()

        replies = await self._retrying("load", read)
        states: dict[str, CustomerState] = {}
        if customer_ids:
            blobs = replies.pop(0)
            states = {cid: CustomerState.from_dict(orjson.loads(blob))
                      for cid, blob in zip(customer_ids, blobs, strict=True) if blob is not None}
        windows: dict[str, SeenWindow] = {}
        for n, customer in enumerate(customers):
            scores, size, oldest = replies[3 * n: 3 * n + 3]
            seen = frozenset(eid for eid, score in zip(event_ids[customer], scores, strict=True)
                             if score is not None)
            windows[customer] = SeenWindow(seen, int(size), float(oldest[0][1]) if oldest else None)
        return states, windows

    async def save(self, updates: Iterable[tuple[CustomerState, ProfileUpdate, Sequence[CustomerEvent]]]
                   ) -> None:
        """Write each changed customer's state and profile and remember the events that changed them."""
        batch = list(updates)
        if not batch:
            return

        async def write() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                for state, profile, applied in batch:
                    cid = state.customer_id
                    pipe.set(state_key(cid), orjson.dumps(state.to_dict()))
                    pipe.hset(profile_key(cid), mapping=profile.to_redis_hash())  # type: ignore[arg-type]
                    pipe.zadd(seen_key(cid), {e.event_id: e.epoch for e in applied})
                    pipe.zremrangebyrank(seen_key(cid), 0, -self.dedup_window - 1)
                    if self.ttl_s:
                        for key in customer_keys(cid):
                            pipe.expire(key, self.ttl_s)
                await pipe.execute()

        await self._retrying("save", write)

    async def forget(self, customer_id: str) -> int:
        """Delete everything kept about one customer; returns how many keys existed."""
        return int(await self._retrying("forget", lambda: self.client.delete(*customer_keys(customer_id))))

    async def _retrying(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        """Retry with exponential back-off while Redis is unreachable; the stream waits, nothing is dropped."""
        delay = 0.1
        loop = asyncio.get_running_loop()
        while True:
            try:
                result = await operation()
            except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                if self.unavailable_since is None:
                    self.unavailable_since = loop.time()
                log.warning("Redis %s failed (%s); retrying in %.1fs", what, error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            if self.unavailable_since is not None:
                log.warning("Redis is back after %.1fs", loop.time() - self.unavailable_since)
                self.unavailable_since = None
            return result

    async def read_profile(self, customer_id: str) -> dict[str, str]:
        raw = await self.client.hgetall(profile_key(customer_id))
        return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
