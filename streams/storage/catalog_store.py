"""Catalog items in Redis: one hash per item (`item:{id}`), what websites and `perso catalog get` read.

Every worker reads the whole items topic and writes what it read, so a worker that lags (just started, reading
from the beginning) must not overwrite a newer version with an older one. Each hash keeps the topic offset it
was written from (`_offset`; a key always lands on the same partition, so offsets of one item compare), and
the script writes only what is newer. A deleted item leaves a small marker (`_deleted`, with that offset) for
a day, so a lagging worker cannot bring it back; readers treat the marker as no item.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

from schemas.items import CatalogItem
from streams.storage.keys import catalog_reject_key, item_key

DELETED_MARKER_TTL_S = 86_400
# How long the claim on dead-lettering a refused record is kept (longer than any worker takes to read the topic).
REJECT_CLAIM_TTL_S = 30 * 86_400

# KEYS: the items' hashes; ARGV[1]: JSON [[offset, [field, value, ...] or null for deleted], ...] in KEYS' order,
# ARGV[2]: how long a deleted marker lives. One call per chunk of records.
_WRITE_IF_NEWER = """
local batch = cjson.decode(ARGV[1])
local written = 0
for i, record in ipairs(batch) do
  local key, offset, fields = KEYS[i], record[1], record[2]
  local current = redis.call('HGET', key, '_offset')
  if not current or tonumber(current) < offset then
    redis.call('DEL', key)
    if fields == cjson.null then
      redis.call('HSET', key, '_offset', tostring(offset), '_deleted', '1')
      redis.call('EXPIRE', key, ARGV[2])
    else
      redis.call('HSET', key, '_offset', tostring(offset), unpack(fields))
    end
    written = written + 1
  end
end
return written
"""

# Records written per round trip.
WRITE_CHUNK = 1000


def item_fields(item: CatalogItem) -> dict[str, str]:
    """The hash of one item: plain strings (numbers as written, booleans true/false, tags a JSON list, times
    ISO 8601); fields the item does not have are left out.

    >>> item_fields(CatalogItem(item_id="tea", category="grocery", price=4.5, tags=("organic",)))
    {'item_id': 'tea', 'category': 'grocery', 'price': '4.5', 'in_stock': 'true', 'hidden': 'false',
     'tags': '["organic"]'}
    """
    fields = {"item_id": item.item_id, "category": item.category, "price": repr(item.price)}
    if item.margin is not None:
        fields["margin"] = repr(item.margin)
    fields["in_stock"] = "true" if item.in_stock else "false"
    fields["hidden"] = "true" if item.hidden else "false"
    fields["tags"] = orjson.dumps(list(item.tags)).decode()
    for name in ("valid_from", "valid_to"):
        moment = getattr(item, name)
        if moment is not None:
            fields[name] = moment.isoformat()
    return fields


class CatalogStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._write = client.register_script(_WRITE_IF_NEWER)

    async def write(self, records: Sequence[tuple[str, int, CatalogItem | None]]) -> int:
        """Write (item id, topic offset, item or None for deleted) records, each only if newer than what Redis
        holds; returns how many were written."""
        written = 0
        for start in range(0, len(records), WRITE_CHUNK):
            chunk = records[start:start + WRITE_CHUNK]
            batch = [[offset, None if item is None else [part for pair in item_fields(item).items() for part in pair]]
                     for _, offset, item in chunk]
            written += int(await self._write(keys=[item_key(item_id) for item_id, _, _ in chunk],
                                             args=[orjson.dumps(batch), DELETED_MARKER_TTL_S]))
        return written

    async def claim_rejects(self, records: Sequence[tuple[str, int, int]]) -> list[bool]:
        """For each refused (topic, partition, offset): whether this worker is the one to dead-letter it."""
        async with self.client.pipeline(transaction=False) as pipe:
            for topic, partition, offset in records:
                pipe.set(catalog_reject_key(topic, partition, offset), "1", nx=True, ex=REJECT_CLAIM_TTL_S)
            return [bool(taken) for taken in await pipe.execute()]

    async def release_rejects(self, records: Sequence[tuple[str, int, int]]) -> None:
        """Give claims back (their dead letters could not be published: another read will try again)."""
        if records:
            await self.client.delete(*(catalog_reject_key(*record) for record in records))

    async def get(self, item_id: str) -> dict[str, Any] | None:
        """The item as stored (tags decoded), or None when unknown or deleted."""
        raw = await self.client.hgetall(item_key(item_id))
        fields = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                  for k, v in raw.items()}
        if not fields or fields.get("_deleted") == "1":
            return None
        fields.pop("_offset", None)
        out: dict[str, Any] = dict(fields)
        out["tags"] = orjson.loads(fields.get("tags", "[]"))
        return out
