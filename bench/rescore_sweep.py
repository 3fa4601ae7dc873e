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

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.personalizer import Personalizer  # noqa: E402
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


def customers_with_history(count: int) -> tuple[Personalizer, list[CustomerState], float]:
    """`count` customers after 21 days of synthetic history, and the models that learned it."""
    shop = SyntheticShop(n_customers=count, seed=7)
    personalizer = Personalizer()
    states: dict[str, CustomerState] = {}
    end = START_TS
    for kind, body in history(shop, 21, START_TS):
        event = parse_event(kind, orjson.dumps(body))
        state = states.setdefault(event.customer_id, CustomerState(event.customer_id))
        personalizer.process(state, event)
        end = max(end, event.epoch)
    return personalizer, list(states.values()), end


async def measure(size: int, due: int, personalizer: Personalizer, states: list[CustomerState], end: float
                  ) -> dict[str, float]:
    settings = Settings()
    client = redis_async(settings.redis.model_copy(update={"redis_url": settings.redis.redis_url.rsplit("/", 1)[0]
                                                           + "/14"}))
    await client.flushdb()
    key = wake_key(0)
    # The base: `size` customers filed, those past `due` far in the future (no states needed for them).
    for start in range(0, size, 50_000):
        chunk = {f"later-{n}": end + 365 * DAY + n for n in range(start, min(size, start + 50_000))}
        await client.zadd(key, chunk)  # type: ignore[arg-type]
    async with client.pipeline(transaction=False) as pipe:
        for state in states[:due]:
            pipe.set(state_key(state.customer_id), orjson.dumps(state.to_dict()))
            pipe.zadd(key, {state.customer_id: state.wake_ts or end})
        await pipe.execute()
    store = RedisCustomerStore(client)
    counters = BatchCounters()
    pipeline = BatchPipeline(personalizer, store, InMemoryPublisher(), lambda topic: topic, sensors=[counters])
    pipeline.clocks[0] = end + 30 * DAY  # a month of silence since: every filed history customer is due
    ticks = [0]
    tick = personalizer.tick

    def counted(state: CustomerState, now_ts: float) -> object:
        ticks[0] += 1
        return tick(state, now_ts)

    personalizer.tick = counted  # type: ignore[method-assign,assignment]
    began = time.perf_counter()
    visited = 0
    while True:
        done = await pipeline.rescore_due(time_budget_s=60.0)
        visited += done
        if done == 0:
            break
    seconds = time.perf_counter() - began
    zset_began = time.perf_counter()
    for _ in range(200):
        await store.due({0: end + 30 * DAY}, 500)
    lookup_ms = (time.perf_counter() - zset_began) / 200 * 1000
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
