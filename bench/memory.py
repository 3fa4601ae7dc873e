"""Resident memory of customer state kept in the worker: RSS after 10k, 100k and 1M distinct customers.

    python bench/memory.py [--counts 10000,100000,1000000] [--visits]

Builds realistic states (a synthetic customer's 30 days of events applied), then fills the worker's
`StateCache` with copies under distinct ids and reads the process RSS from /proc after each step. With
--visits the states also had the timer's visits between their events, as a worker's have: each visit may
leave a delayed-label snapshot, so they hold about twice the snapshots (22 against 10) of the default's,
which keeps the figures of earlier runs comparable. Item memory (the co-occurrence model at 10k and 100k
items) is measured by bench/cooccurrence_memory.py. Prints the figures on the last lines and writes
bench/results/memory.json (memory-visits.json with --visits).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.personalizer import Personalizer  # noqa: E402
from models.state import CustomerState  # noqa: E402
from schemas.events import parse_event  # noqa: E402
from streams.datasets.synthetic import SyntheticShop, history  # noqa: E402
from streams.settings import WorkerSettings  # noqa: E402
from streams.storage.state_cache import StateCache, compress_state, decompress_state  # noqa: E402


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def sample_states(n: int = 200, visits: bool = False) -> list[dict[str, object]]:
    """Per-customer states as the worker holds them after a month of a synthetic shop's traffic (with `visits`,
    and the timer's visits to each customer before each of their events)."""
    shop = SyntheticShop(n_customers=n, seed=8, prefix="m")
    personalizer, states = Personalizer(), dict[str, CustomerState]()
    for kind, body in history(shop, 30, time.time() - 31 * 86_400):
        event = parse_event(kind, orjson.dumps(body))
        state = states.setdefault(event.customer_id, CustomerState(event.customer_id))
        if visits:
            personalizer.catch_up(state, event.epoch)
        personalizer.process(state, event)
    return [s.to_dict() for s in states.values()]


def codec_cost(states: list[CustomerState]) -> dict[str, float]:
    """What a state costs the cache's cold tier: its compressed size, and the time to compress and to restore it
    (paid per event by a worker whose customers are mostly cold)."""
    compress, restore = float("inf"), float("inf")
    blobs: list[bytes] = []
    for _ in range(3):
        started = time.perf_counter()
        blobs = [compress_state(state) for state in states]
        compress = min(compress, (time.perf_counter() - started) / len(states))
        started = time.perf_counter()
        for blob in blobs:
            decompress_state(blob)
        restore = min(restore, (time.perf_counter() - started) / len(states))
    return {"compressed_bytes": sum(map(len, blobs)) / len(blobs), "compress_us": round(compress * 1e6, 1),
            "restore_us": round(restore * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="10000,100000,1000000")
    parser.add_argument("--hot", type=int, default=WorkerSettings().state_cache_hot,
                        help="states kept as objects (PERSO_STATE_CACHE_HOT); the rest are compressed")
    parser.add_argument("--visits", action="store_true", help="states with the timer's visits between events")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    samples = sample_states(visits=args.visits)
    json_bytes = sum(len(orjson.dumps(s)) for s in samples) / len(samples)
    codec = codec_cost([CustomerState.from_dict(s) for s in samples])
    print(f"a cold state: {codec['compressed_bytes']:,.0f} bytes, compress {codec['compress_us']:.0f} µs, restore "
          f"{codec['restore_us']:.0f} µs (best of 3 passes)", flush=True)
    cache = StateCache(capacity=max(counts) + 1, hot=args.hot)
    gc.collect()
    baseline = rss_bytes()
    results = []
    made = 0
    for target in counts:
        while made < target:
            data = dict(samples[made % len(samples)])
            data["customer_id"] = f"cust-{made:08d}"
            cache.put(CustomerState.from_dict(orjson.loads(orjson.dumps(data))))  # independent copies
            made += 1
        gc.collect()
        grown = rss_bytes() - baseline
        results.append({"customers": target, "rss_growth_bytes": grown, "bytes_per_customer": round(grown / target)})
        print(f"{target:>9,} customers: RSS +{grown / 2**20:,.1f} MiB = {grown / target:,.0f} bytes per customer",
              flush=True)
    result = {"state_json_bytes_mean": round(json_bytes), "visits": args.visits, "codec": codec, "steps": results}
    out = ROOT / "bench" / "results" / ("memory-visits.json" if args.visits else "memory.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    last = results[-1]
    print(f"memory: {last['bytes_per_customer']:,} bytes per cached customer at {last['customers']:,} "
          f"(state JSON {json_bytes:,.0f} bytes)")


if __name__ == "__main__":
    main()
