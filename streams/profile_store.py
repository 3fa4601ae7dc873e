"""Redis persistence: customer state and the readable profile, written together in one transaction."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from models.features import CustomerState
from schemas.profile import ProfileUpdate

log = logging.getLogger(__name__)
T = TypeVar("T")


def state_key(customer_id: str) -> str:
    return f"state:{customer_id}"


def profile_key(customer_id: str) -> str:
    return f"profile:{customer_id}"


class ProfileStore:
    """`state:{id}` holds the worker's full per-customer state (JSON, including the de-duplication window);
    `profile:{id}` is the hash websites and messaging services read. Both change in one MULTI/EXEC so the
    event ids remembered always match the counters they produced.
    """

    def __init__(self, client: aioredis.Redis, ttl_s: float = 0, retry_max_s: float = 5.0) -> None:
        self.client = client
        self.ttl_s = int(ttl_s)
        self.retry_max_s = retry_max_s
        self.unavailable_since: float | None = None

    async def load(self, customer_ids: Sequence[str]) -> dict[str, CustomerState]:
        if not customer_ids:
            return {}

        async def read() -> list[bytes | str | None]:
            return await self.client.mget([state_key(c) for c in customer_ids])

        raw = await self._retrying("load", read)
        return {cid: CustomerState.from_dict(orjson.loads(blob))
                for cid, blob in zip(customer_ids, raw, strict=True) if blob is not None}

    async def save(self, updates: Iterable[tuple[CustomerState, ProfileUpdate]]) -> None:
        batch = list(updates)
        if not batch:
            return

        async def write() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                for state, profile in batch:
                    pipe.set(state_key(state.customer_id), orjson.dumps(state.to_dict()))
                    pipe.hset(profile_key(state.customer_id), mapping=profile.to_redis_hash())  # type: ignore[arg-type]
                    if self.ttl_s:
                        pipe.expire(state_key(state.customer_id), self.ttl_s)
                        pipe.expire(profile_key(state.customer_id), self.ttl_s)
                await pipe.execute()

        await self._retrying("save", write)

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
