"""The workers' stats hashes are found through their registry, never by a SCAN of the keyspace."""

import asyncio
import time
import uuid

from streams.security import redis_async
from streams.settings import RedisSettings, Settings
from streams.storage import keys, worker_stats


def test_live_workers_are_listed_from_the_registry_and_stale_or_stopped_ones_are_not(stack: Settings) -> None:
    app_id = f"stats-{uuid.uuid4().hex[:6]}"
    redis = RedisSettings(redis_url=stack.redis.redis_url.rsplit("/", 1)[0] + "/15")

    async def scenario() -> tuple[list[str], list[str], list[str], int]:
        client = redis_async(redis)
        try:
            live, stale, stopped = (keys.stats_key(app_id, "host", pid) for pid in (1, 2, 3))
            async with client.pipeline(transaction=True) as pipe:
                worker_stats.write(pipe, app_id, live, {"records": 10, "updated_at": time.time()})
                worker_stats.write(pipe, app_id, stale, {"records": 5},
                                   now=time.time() - worker_stats.STATS_TTL_S - 5)
                worker_stats.write(pipe, app_id, stopped, {"records": 7})
                await pipe.execute()
            # A stats hash nobody registered (as a SCAN would have found it) is not a worker.
            await client.hset(keys.stats_key(app_id, "host", 4), mapping={"records": 1})
            before = [name for name, _ in await worker_stats.read_all(client, app_id)]
            await worker_stats.remove(client, app_id, stopped)
            after = [name for name, _ in await worker_stats.read_all(client, app_id)]
            fields = dict(await worker_stats.read_all(client, app_id))
            registered = int(await client.zcard(keys.workers_key(app_id)))
            return before, after, [fields["host:1"]["records"].decode()], registered
        finally:
            await client.delete(keys.workers_key(app_id), *(keys.stats_key(app_id, "host", p) for p in range(1, 5)))
            await client.aclose()

    before, after, records, registered = asyncio.run(scenario())
    assert before == ["host:1", "host:3"]  # the stale entry is dropped from the registry as it is read
    assert after == ["host:1"]
    assert records == ["10"]
    assert registered == 1
