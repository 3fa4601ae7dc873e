"""Customer storage in Redis: state, the readable profile and the applied event ids, in one atomic script."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from models.experiments.attribution import Tallies
from models.state import CustomerState
from streams.loop_turns import Turns, a_turn
from streams.storage.keys import (
    customer_keys,
    experiment_arm_key,
    forget_channel,
    profile_key,
    seen_key,
    state_key,
    wake_key,
)
from streams.storage.repository import CustomerUpdate, SeenWindow

# Both scripts replace a pipeline of 3-7 commands per customer with one command per batch, its data in one
# JSON argument (decoded by Redis's cjson): packing, encoding and parsing those commands and their ~60
# arguments per customer was a large share of the worker's time under the profiler. A script runs atomically,
# as the MULTI/EXEC it replaces did (Redis 7 or later: the shebang below).

# Both start with a Redis 7 shebang. The save script declares that it writes, so Redis refuses it whole
# before it starts when it cannot write (out of memory with noeviction, a read-only replica): a script
# refused half-way would keep its first writes, a state saved without the event ids that made it, which
# a redelivery would then apply twice. The load script declares that it only reads, so it still runs then.

# KEYS: seen:{c} for each customer with events, then state:{c} of the states to read.
# ARGV[1]: JSON [[event id, ...] per customer with events].
# Returns {{zcard, oldest score or false, {score or false per id}} per customer, {state or false}}.
_LOAD_LUA = """#!lua flags=no-writes
local asked = cjson.decode(ARGV[1])
local windows, states = {}, {}
for k, ids in ipairs(asked) do
  local oldest = redis.call('ZRANGE', KEYS[k], 0, 0, 'WITHSCORES')
  windows[k] = {redis.call('ZCARD', KEYS[k]), oldest[2] or false, redis.call('ZMSCORE', KEYS[k], unpack(ids))}
end
for k = #asked + 1, #KEYS do states[#states + 1] = redis.call('GET', KEYS[k]) end
return {windows, states}
"""

# KEYS: state:{c}, profile:{c}, seen:{c}, wake:{partition of c} per customer, then one experiment arm's counters
# hash per entry of ARGV[4]. ARGV: dedup window, TTL seconds (0: none), JSON [[state JSON, {profile field: value},
# [score, event id, ...], wake ts or false, customer] per customer], JSON [[field, increment, ...] per counters key].
_SAVE_LUA = """#!lua
local window, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local counters = cjson.decode(ARGV[4])
local first = #KEYS - #counters
for t, increments in ipairs(counters) do
  for i = 1, #increments, 2 do redis.call('HINCRBYFLOAT', KEYS[first + t], increments[i], increments[i + 1]) end
end
for c, update in ipairs(cjson.decode(ARGV[3])) do
  local k = 4 * c - 3
  redis.call('SET', KEYS[k], update[1])
  local hash = {}
  for field, value in pairs(update[2]) do
    hash[#hash + 1] = field
    hash[#hash + 1] = value
  end
  if #hash > 0 then redis.call('HSET', KEYS[k + 1], unpack(hash)) end
  local seen = update[3]
  for i = 1, #seen, 1000 do redis.call('ZADD', KEYS[k + 2], unpack(seen, i, math.min(i + 999, #seen))) end
  redis.call('ZREMRANGEBYRANK', KEYS[k + 2], 0, -window - 1)
  if ttl > 0 then for j = 0, 2 do redis.call('EXPIRE', KEYS[k + j], ttl) end end
  if update[4] then redis.call('ZADD', KEYS[k + 3], update[4], update[5]) end
end
return #KEYS
"""


class RedisCustomerStore:
    """`state:{id}` holds the worker's full per-customer state (JSON); `profile:{id}` is the hash websites and
    messaging services read; `seen:{id}` remembers the ids of the events applied (sorted set by event time,
    the newest `dedup_window` kept). All three change in one atomic script, so the event ids remembered always
    match the counters they produced. Errors are raised as they are: retrying is the pipeline's decision.
    """

    def __init__(self, client: aioredis.Redis, ttl_s: float = 0, dedup_window: int = 10_000) -> None:
        self.client = client
        self.ttl_s = int(ttl_s)
        self.dedup_window = dedup_window
        self._load_script = client.register_script(_LOAD_LUA)
        self._save_script = client.register_script(_SAVE_LUA)

    async def load(self, customer_ids: Sequence[str], event_ids: dict[str, list[str]]
                   ) -> tuple[dict[str, CustomerState], dict[str, SeenWindow]]:
        """States of `customer_ids` and, for each customer in `event_ids`, which of those ids were applied.

        One round trip for the whole batch (a Lua script, see _LOAD_LUA).
        """
        if not customer_ids and not event_ids:
            return {}, {}
        customers = list(event_ids)
        keys = [seen_key(c) for c in customers] + [state_key(c) for c in customer_ids]
        args = [orjson.dumps([event_ids[c] for c in customers])]

        window_replies, blobs = await self._load_script(keys=keys, args=args)
        states = {cid: CustomerState.from_dict(orjson.loads(blob))
                  for cid, blob in zip(customer_ids, blobs, strict=True) if blob}
        windows: dict[str, SeenWindow] = {}
        for customer, (size, oldest, scores) in zip(customers, window_replies, strict=True):
            seen = frozenset(eid for eid, score in zip(event_ids[customer], scores, strict=True) if score)
            windows[customer] = SeenWindow(seen, int(size), float(oldest) if oldest else None)
        return states, windows

    async def save(self, updates: Sequence[CustomerUpdate], partitions: Mapping[str, int] | None = None,
                   tallies: Tallies | None = None) -> None:
        """Write each changed customer's state and profile, remember the events that changed them, file the
        customer under its partition's wake index (`partitions`: customer -> input partition) and add `tallies` to
        the experiments' counters: one atomic script."""
        keys: list[str] = []
        batch: list[Any] = []
        partitions = partitions or {}
        # Each state's JSON and profile's hash cost 40-100 µs: a replay's save of 2,000 customers held the event
        # loop ~125 ms (docs/benchmarks.md). The caller holds the pipeline lock, so nothing changes them meanwhile.
        turn = Turns()
        for state, profile, applied in updates:
            if turn.due():
                await a_turn()
            customer = state.customer_id
            partition = partitions.get(customer)
            keys.extend(customer_keys(customer))
            keys.append(wake_key(partition if partition is not None else -1))
            seen: list[Any] = []
            for event in applied:
                seen.append(event.epoch)
                seen.append(event.event_id)
            wake = state.wake_ts if partition is not None and state.wake_ts is not None else False
            fields = profile.to_redis_hash() if profile is not None else {}
            batch.append([orjson.dumps(state.to_dict()).decode(), fields, seen, wake, customer])
        counters: list[list[Any]] = []
        for (experiment, arm), fields_of in (tallies or {}).items():
            increments: list[Any] = []
            for name, increment in fields_of.items():
                if increment:
                    increments += [name, repr(float(increment))]  # repr: every digit of a float survives
            if increments:
                keys.append(experiment_arm_key(experiment, arm))
                counters.append(increments)
        if keys:
            args: list[int | bytes] = [self.dedup_window, self.ttl_s, orjson.dumps(batch), orjson.dumps(counters)]
            await self._save_script(keys=keys, args=args)

    async def due(self, until_by_partition: Mapping[int, float], limit: int) -> dict[int, list[str]]:
        """Per partition, up to `limit` customers due a visit at or before its stream time, the longest-waiting
        first: one round trip for all of them."""
        if not until_by_partition:
            return {}
        partitions = list(until_by_partition)
        async with self.client.pipeline(transaction=False) as pipe:
            for partition in partitions:
                pipe.zrangebyscore(wake_key(partition), "-inf", until_by_partition[partition], start=0, num=limit)
            replies = await pipe.execute()
        return {partition: [_text(cast(bytes | str, customer)) for customer in found]
                for partition, found in zip(partitions, replies, strict=True)}

    async def drop_wakes(self, partition: int, customer_ids: Sequence[str]) -> None:
        if customer_ids:
            await self.client.zrem(wake_key(partition), *customer_ids)

    async def forget(self, customer_id: str) -> int:
        """Delete everything kept about one customer; returns how many keys existed."""
        return int(await self.client.delete(*customer_keys(customer_id)))

    async def read_profile(self, customer_id: str) -> dict[str, str]:
        raw = await self.client.hgetall(profile_key(customer_id))
        return {_text(k): _text(v) for k, v in raw.items()}


async def forget_customer_everywhere(client: aioredis.Redis, app_id: str, customer_id: str) -> tuple[int, int]:
    """Delete what is kept about one customer (as stored, already pseudonymised) and tell the app's running workers
    to drop their cached copy (`perso forget` and DELETE /profiles/{id}): (keys deleted, workers notified)."""
    deleted = await RedisCustomerStore(client).forget(customer_id)
    notified = int(await client.publish(forget_channel(app_id), customer_id))
    return deleted, notified


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
