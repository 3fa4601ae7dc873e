"""Cost of one timer sweep with the timed triggers on (abandoned cart and win-back), as the customer base grows.

    python bench/trigger_sweep.py [--sizes 100000,1000000] [--due 2000] [--after-hours 2,720]

Needs Redis at PERSO_REDIS_URL; database 14 is flushed. As bench/rescore_sweep.py: for each size N the wake index of
partition 0 holds N customers, `--due` of them with real states (three weeks of synthetic history, learned with the
triggers on, so some carts are left and every customer has a lapse ahead) and the rest due a year later. The
sweep (`rescore_due`, `PERSO_RESCORE_BATCH` per round trip) then runs at stream time `--after-hours` past the history:
2 hours (the carts left at the end are due a reminder) and 720 (a month: everyone is due, win-backs are decided).
Each line is measured with the triggers on and, for reference, off (the same states). Prints one line per case and
writes bench/results/trigger_sweep.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rescore_sweep import customers_with_history as history_of  # noqa: E402
from rescore_sweep import file_customers, scratch_redis, sweep  # noqa: E402

from models.personalizer import Personalizer  # noqa: E402
from models.settings import ModelSettings  # noqa: E402
from streams.storage.customer_store import RedisCustomerStore  # noqa: E402
from streams.storage.keys import wake_key  # noqa: E402
from streams.worker.pipeline import BatchPipeline  # noqa: E402
from streams.worker.publisher import InMemoryPublisher  # noqa: E402

HOUR = 3600.0
TRIGGERS = ["abandoned_cart", "win_back"]


def customers_with_history(count: int) -> tuple[list[dict[str, object]], float, ModelSettings]:
    """`count` customers after 21 days of synthetic history learned with the triggers on (their states as stored)."""
    settings = ModelSettings(triggers=TRIGGERS)
    _, states, end = history_of(count, settings)
    return [orjson.loads(orjson.dumps(s.to_dict())) for s in states], end, settings


async def measure(size: int, stored: list[dict[str, object]], end: float, after_s: float, settings: ModelSettings
                  ) -> dict[str, float]:
    client = scratch_redis()
    await client.flushdb()
    await file_customers(client, size, stored, end)
    store = RedisCustomerStore(client)
    published = InMemoryPublisher()
    pipeline = BatchPipeline(Personalizer(settings), store, published, lambda topic: topic)
    due = await client.zcount(wake_key(0), "-inf", end + after_s)
    visited, seconds, lookup_ms = await sweep(pipeline, store, end + after_s)
    await client.flushdb()
    await client.aclose()
    moments = [o.moment for o in published.offers]
    return {"customers": size, "triggers": bool(settings.triggers), "after_hours": after_s / HOUR, "due": due,
            "visited": visited, "reminders": moments.count("abandoned_cart"), "win_backs": moments.count("win_back"),
            "seconds": seconds, "ms_per_round_of_500": seconds / max(1, visited) * 500 * 1000,
            "us_per_due_customer": seconds / max(1, visited) * 1e6, "due_lookup_ms": lookup_ms}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--due", type=int, default=2000)
    parser.add_argument("--after-hours", default="2,720")
    args = parser.parse_args()
    stored, end, settings = customers_with_history(args.due)
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        for hours in (float(h) for h in args.after_hours.split(",")):
            for on in (True, False):
                case = settings if on else settings.model_copy(update={"triggers": []})
                row = asyncio.run(measure(size, stored, end, hours * HOUR, case))
                results.append(row)
                print(f"{row['customers']:>9,} customers filed, triggers {'on ' if on else 'off'}, sweep at +"
                      f"{hours:g} h: {row['due']:,} due, {row['visited']:,} visited, {row['reminders']} reminders, "
                      f"{row['win_backs']} win-backs, {row['seconds'] * 1000:.0f} ms in all, "
                      f"{row['ms_per_round_of_500']:.1f} ms per round of 500, {row['us_per_due_customer']:.0f} us per "
                      f"due customer, due lookup {row['due_lookup_ms']:.2f} ms", flush=True)
    out = ROOT / "bench" / "results" / "trigger_sweep.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
