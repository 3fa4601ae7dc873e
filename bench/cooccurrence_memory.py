"""Memory of the item co-occurrence model as the number of distinct items grows.

    python bench/cooccurrence_memory.py [--items 1000 10000 100000] [--baskets-per-item 5]

Learns random 3-item baskets (plus popularity observations) over N distinct items and reports the
traced Python memory the model holds. With the default bounds (PERSO_COOC_MAX_ITEMS=50000 items,
30 neighbours each) memory must flatten once N passes the item cap. Prints one line per size and a JSON
summary on the last line; writes bench/results/cooccurrence_memory.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.learners.cooccurrence import ItemCooccurrence, ItemInfo  # noqa: E402


def measure(n_items: int, baskets_per_item: int, seed: int = 1) -> dict[str, float]:
    rng = random.Random(seed)
    tracemalloc.start()
    model = ItemCooccurrence()
    ts = time.time()
    started = time.perf_counter()
    for n in range(n_items * baskets_per_item // 3):
        basket = [f"item-{rng.randrange(n_items)}" for _ in range(3)]
        for item in basket:
            model.observe_item(ItemInfo(item, f"cat-{hash(item) % 50}", 10.0), ts + n)
        model.learn_together(basket, ts + n)
    seconds = time.perf_counter() - started
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"items": n_items, "items_kept": len(model.item_weight), "mib": round(current / 2**20, 1),
            "bytes_per_kept_item": round(current / max(1, len(model.item_weight))), "seconds": round(seconds, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--baskets-per-item", type=int, default=5)
    args = parser.parse_args()
    results = []
    for n in args.items:
        result = measure(n, args.baskets_per_item)
        results.append(result)
        print(f"{n:>7} items: {result['mib']:>7} MiB traced, {result['items_kept']} kept, "
              f"{result['bytes_per_kept_item']} B/item, {result['seconds']} s", flush=True)
    out = ROOT / "bench" / "results" / "cooccurrence_memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
