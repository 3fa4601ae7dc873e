"""Promotion budgets in Redis, never exceeded across workers: one set per promotion (`promotion:{name}`) of the
offer ids its budget was spent on, written by one script per batch.

An offer id already in the set is granted again without spending (a batch redelivered after a crash re-decides
the same offers); a new one is granted only while the set holds fewer ids than the budget. The script runs
atomically, so two workers reserving at once cannot both take the last unit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis

from streams.storage.keys import promotion_key

# KEYS: one set per promotion; ARGV[1]: JSON {"budgets": [...] in KEYS' order, "offers": [[index (1-based), offer
# id], ...]}. Returns {granted (1/0 per offer), spent per promotion}.
_RESERVE = """
local args = cjson.decode(ARGV[1])
local granted = {}
for n, offer in ipairs(args.offers) do
  local key = KEYS[offer[1]]
  if redis.call('SISMEMBER', key, offer[2]) == 1 then
    granted[n] = 1
  elseif redis.call('SCARD', key) < args.budgets[offer[1]] then
    redis.call('SADD', key, offer[2])
    granted[n] = 1
  else
    granted[n] = 0
  end
end
local spent = {}
for p = 1, #KEYS do spent[p] = redis.call('SCARD', KEYS[p]) end
return {granted, spent}
"""


@dataclass(frozen=True)
class Reservation:
    granted: list[bool]  # per offer asked, in order
    remaining: dict[str, int]  # per promotion asked about


class PromotionBudgets:
    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._reserve = client.register_script(_RESERVE)

    async def reserve(self, offers: Sequence[tuple[str, str]], budgets: Mapping[str, int]) -> Reservation:
        """Reserve one unit of its promotion's budget for each (promotion, offer id): one round trip."""
        names = sorted({name for name, _ in offers})
        if not names:
            return Reservation([], {})
        index = {name: n + 1 for n, name in enumerate(names)}
        payload = {"budgets": [budgets[name] for name in names],
                   "offers": [[index[name], offer_id] for name, offer_id in offers]}
        granted, spent = await self._reserve(keys=[promotion_key(name) for name in names],
                                             args=[orjson.dumps(payload)])
        return Reservation([bool(flag) for flag in granted],
                           {name: max(0, budgets[name] - int(used)) for name, used in zip(names, spent, strict=True)})

    async def spent(self, names: Sequence[str]) -> dict[str, int]:
        """How many offers each promotion's budget was spent on."""
        async with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.scard(promotion_key(name))
            counts = await pipe.execute()
        return {name: int(count) for name, count in zip(names, counts, strict=True)}
