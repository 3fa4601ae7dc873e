"""Cost of one re-scoring round (streams/worker/pipeline.py `rescore_due`) as the customer base grows.

    python bench/rescore_sweep.py [--sizes 10000,100000,1000000] [--due 2000]

Needs Redis at PERSO_REDIS_URL; database 14 is flushed. For each size N, the wake index of partition 0 holds N
customers, `--due` of them due now (with real states: a few weeks of synthetic history each) and the rest due
later; the pipeline then re-scores the due ones, `PERSO_RESCORE_BATCH` (500) per round trip. What a round costs
should not grow with N: the index is a sorted set read from its low end (ZRANGEBYSCORE with LIMIT, O(log N +
batch)). The first size is the reference measured in the same run. Prints one line per size and writes
bench/results/rescore_sweep.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.personalizer import Personalizer  # noqa: E402
from models.settings import ModelSettings  # noqa: E402
from models.state import DAY, CustomerState  # noqa: E402
from schemas.events import parse_event  # noqa: E402
from streams.datasets.synthetic import SyntheticShop, history  # noqa: E402
from streams.security import redis_async  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.storage.customer_store import RedisCustomerStore  # noqa: E402
from streams.storage.keys import state_key, wake_key  # noqa: E402
from streams.worker.pipeline import BatchPipeline  # noqa: E402
from streams.worker.publisher import InMemoryPublisher  # noqa: E402
from streams.worker.sensors import BatchCounters  # noqa: E402

START_TS = 1_767_225_600.0  # 2026-01-01


def customers_with_history(count: int, settings: ModelSettings | None = None
                           ) -> tuple[Personalizer, list[CustomerState], float]:
    """`count` customers after 21 days of synthetic history, the models that learned it, and its last moment."""
    shop = SyntheticShop(n_customers=count, seed=7)
    personalizer = Personalizer(settings)
    states: dict[str, CustomerState] = {}
    end = START_TS
    for kind, body in history(shop, 21, START_TS):
        event = parse_event(kind, orjson.dumps(body))
        state = states.setdefault(event.customer_id, CustomerState(event.customer_id))
        personalizer.process(state, event)
        end = max(end, event.epoch)
    return personalizer, list(states.values()), end


async def file_customers(client: aioredis.Redis, size: int, stored: list[dict[str, Any]], end: float) -> None:
    """Partition 0's wake index holding `size` customers: the `stored` states, due at their own wake times, and a
    base filed a year past `end` (no states needed for those: a sweep never reaches them)."""
    key = wake_key(0)
    base = size - len(stored)
    for start in range(0, base, 50_000):
        chunk = {f"later-{n}": end + 365 * DAY + n for n in range(start, min(base, start + 50_000))}
        await client.zadd(key, chunk)
    async with client.pipeline(transaction=False) as pipe:
        for state in stored:
            pipe.set(state_key(str(state["customer_id"])), orjson.dumps(state))
            pipe.zadd(key, {str(state["customer_id"]): float(state["wake_ts"] or end)})
        await pipe.execute()


async def sweep(pipeline: BatchPipeline, store: RedisCustomerStore, until: float) -> tuple[int, float, float]:
    """Visit every customer due by `until` on partition 0, as the worker's timer does: (customers visited, seconds,
    ms per lookup of the next 500 due, the index's cost alone)."""
    pipeline.clocks[0] = until
    began = time.perf_counter()
    visited = 0
    while (done := await pipeline.rescore_due(time_budget_s=600.0)) > 0:
        visited += done
    seconds = time.perf_counter() - began
    lookup_began = time.perf_counter()
    for _ in range(200):
        await store.due({0: until}, 500)
    return visited, seconds, (time.perf_counter() - lookup_began) / 200 * 1000


def scratch_redis() -> aioredis.Redis:
    """Database 14 of PERSO_REDIS_URL's server, flushed by each measurement."""
    settings = Settings()
    return redis_async(settings.redis.model_copy(update={"redis_url": settings.redis.redis_url.rsplit("/", 1)[0]
                                                         + "/14"}))


async def measure(size: int, due: int, personalizer: Personalizer, states: list[CustomerState], end: float
                  ) -> dict[str, float]:
    client = scratch_redis()
    await client.flushdb()
    await file_customers(client, size, [state.to_dict() for state in states[:due]], end)
    store = RedisCustomerStore(client)
    counters = BatchCounters()
    pipeline = BatchPipeline(personalizer, store, InMemoryPublisher(), lambda topic: topic, sensors=[counters])
    ticks = [0]
    tick = personalizer.tick

    def counted(state: CustomerState, now_ts: float, watermark: float | None = None) -> object:
        ticks[0] += 1
        return tick(state, now_ts, watermark)

    personalizer.tick = counted  # type: ignore[method-assign,assignment]
    # A month of silence since: every filed history customer is due.
    visited, seconds, lookup_ms = await sweep(pipeline, store, end + 30 * DAY)
    await client.flushdb()
    await client.aclose()
    personalizer.tick = tick  # type: ignore[method-assign]
    return {"customers": size, "due": due, "visited": visited, "ticks": ticks[0], "seconds": seconds,
            "us_per_tick": seconds / max(1, ticks[0]) * 1e6,
            "us_per_visit": seconds / max(1, visited) * 1e6,
            "ms_per_round_of_500": seconds / max(1, visited) * 500 * 1000, "due_lookup_ms": lookup_ms}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--due", type=int, default=2000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    for size in sizes:
        # The same customers and models for every size: only the base around them grows.
        personalizer, states, end = customers_with_history(args.due)
        row = asyncio.run(measure(size, args.due, personalizer, states, end))
        results.append(row)
    reference = results[0]
    for row in results:
        per_customer = row["ticks"] / max(1, row["visited"])
        print(f"{row['customers']:>9,} customers filed, {row['visited']} due after a month of silence: "
              f"{per_customer:.1f} visits each at their own times, {row['us_per_tick']:.0f} us per visit, "
              f"{row['us_per_visit']:.0f} us per customer caught up, {row['ms_per_round_of_500']:.1f} ms per "
              f"round of 500 customers "
              f"({row['ms_per_round_of_500'] / reference['ms_per_round_of_500']:.2f}x the {reference['customers']:,} "
              f"reference), due lookup {row['due_lookup_ms']:.2f} ms")
    out = ROOT / "bench" / "results" / "rescore_sweep.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
