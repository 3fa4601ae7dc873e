"""Acceptance on a real log, as a user runs it: Ta Feng's first three months (a hash sample of a third of its
customers) replayed with `perso replay` into a running `perso worker`; every profile read from Redis at the
cutoff and scored against what the customer bought afterwards. The figures are the worker's, not a model's
opinion of its own training examples. `bench/tafeng_worker.py` runs the same on every customer.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from models.evaluation.metrics import binary_metrics
from models.evaluation.outcomes import PurchaseTimes
from models.evaluation.profiles import SCORES, score_profiles
from models.state import DAY
from streams.datasets.public_logs import read_tafeng
from streams.settings import Settings
from streams.storage.keys import profile_key, wake_key
from tests.integration.conftest import isolated, partition_of, wait_for
from tests.integration.scenario import replay, start_ready, worker_stat, worker_stats

CUTOFF = datetime(2001, 1, 29, tzinfo=UTC)  # 30 days before the log ends: churn's truth is whole


# A third of Ta Feng through one worker takes ~225 s alone on this machine: the suite-wide 300 s timeout is too
# close once the machine is shared.
@pytest.mark.timeout(900)
# "live": the worker runs while the log is replayed, as a user tries it. "backlog": the log is replayed first (a
# backfill published before the worker starts, or a worker back after downtime): each partition's records then come
# in batches that span days of stream time, one partition at a time. Before visits were made between a batch's
# events, that read propensity 0.670 and churn risk 0.667, one partition's mean score 0.016 for a rate of 0.166 (the
# "low runs" of docs/model-quality.md).
@pytest.mark.parametrize("worker_first", [True, False], ids=["live", "backlog"])
def test_ta_feng_through_the_worker_scores_as_well_as_the_best_baseline(stack: Settings, tmp_path: Path,
                                                                        worker_first: bool) -> None:
    settings = isolated(stack, "tafeng", redis_db=10, exclude_bought_days=0)
    with redis.Redis.from_url(settings.redis.redis_url) as fresh:
        fresh.flushdb()  # the other run's customers (same ids) would be remembered, their baskets duplicates
    events = [e for e in read_tafeng() if zlib.crc32(e.customer_id.encode()) % 3 == 0]
    before = [e for e in events if e.ts < CUTOFF]
    later: dict[str, list[float]] = {}
    for event in events:
        if event.ts >= CUTOFF:
            later.setdefault(event.customer_id, []).append(event.epoch)
    log = tmp_path / "tafeng.jsonl"
    log.write_text("".join(e.model_dump_json() + "\n" for e in before))
    customers = sorted({e.customer_id for e in before})
    end_ts = max(e.epoch for e in before)

    if not worker_first:
        assert f"published {len(before)}, rejected 0" in replay(settings, log, tmp_path).stdout
    worker = start_ready(settings, tmp_path / "worker.log", probe_at=before[0].ts)
    client = redis.Redis.from_url(settings.redis.redis_url, decode_responses=True)
    try:
        if worker_first:
            assert f"published {len(before)}, rejected 0" in replay(settings, log, tmp_path).stdout
        wait_for(lambda: worker_stat(settings, "accepted") >= len(before) + 1, 600, "every basket applied", worker)
        assert worker_stat(settings, "accepted") == len(before) + 1  # + the probe: each basket exactly once
        # Then the silent customers are re-scored up to the end of the replayed weeks (the stream's time).
        wait_for(lambda: sum(client.zcount(wake_key(p), "-inf", end_ts) for p in range(settings.kafka.partitions))
                 == 0, 300, "every customer due by the stream's end to be re-scored", worker)
        profiles = {c: client.hgetall(profile_key(c)) for c in customers}
        # How the run went for the worker: stalls of its event loop (long rounds of catch-up visits delay its
        # heartbeats) and rebalances (each re-reads the customers from Redis), printed below.
        (_, stats), = worker_stats(settings)
        conditions = {name: int(float(stats.get(name, 0))) for name in
                      ("loop_stalls", "loop_longest_stall_ms", "revocations", "batches", "rescored")}
    finally:
        worker.stop()
        client.close()

    assert all(p.get("propensity") and p.get("churn_risk") and p.get("rfm_group") and p.get("propensity_reason")
               for p in profiles.values())
    truth = PurchaseTimes(later)
    figures = score_profiles(profiles, truth, end_ts)
    propensity, churn = figures["propensity"], figures["churn_risk"]
    for name, score in (("propensity", propensity), ("churn risk", churn)):  # in the log of every run (-s / -rA)
        print(name, {who: {k: round(v, 3) for k, v in score[who].items() if k in ("roc_auc", "ece")}
                     for who in ("engine", "recency-only", "frequency-only")},
              "engine minus", {who: {k: round(v, 3) for k, v in gap.items() if k != "resamples"}
                               for who, gap in score["engine minus"].items()})
    # Where a run that scores low differs (two CI runs read 0.660 and 0.682; runs here 0.736-0.738): each
    # partition's figures and how long before the last profile write its own last one was (partitions are
    # consumed at different paces and share the models).
    print("by partition", _by_partition(profiles, truth, end_ts, settings.kafka.partitions))
    print("the worker's run", conditions)
    warnings = [line for line in (tmp_path / "worker.log").read_text(errors="replace").splitlines()
                if "[WARNING]" in line or "[ERROR]" in line or "[CRITICAL]" in line]
    print(f"the worker logged {len(warnings)} warnings or errors; the last:", *warnings[-15:], sep="\n")
    assert propensity["engine"]["n"] == len(customers) > 8000
    # Ranks customers well above chance and above recency alone, close to frequency alone (the strongest single
    # signal in groceries), and its probabilities mean what they say. The margins allow for the spread between
    # runs: how events fall into batches, and so where visits interleave with them, depends on timing (AUC 0.713
    # to 0.738 and ECE 0.014 to 0.051 over nine runs here, 0.682 on one CI run; docs/model-quality.md).
    for score in (propensity, churn):
        engine = score["engine"]
        assert engine["roc_auc"] > max(0.68, score["recency-only"]["roc_auc"] + 0.04), figures
        assert score["engine minus"]["recency-only"]["low"] > 0, figures  # paired: above it, not by chance
        assert engine["roc_auc"] > score["frequency-only"]["roc_auc"] - 0.05, figures
        assert engine["ece"] < 0.08, figures


def _by_partition(profiles: Mapping[str, Mapping[Any, Any]], truth: PurchaseTimes, end_ts: float, partitions: int
                  ) -> dict[int, str]:
    """Per input partition (where the producer sends the customer key): customers, propensity's AUC and mean
    score against the rate, churn risk's mean, how long before the stream's end the profiles were scored (median
    and longest, days), and seconds from the partition's last profile write to the last of all."""
    horizon_days = next(days for field, days, _ in SCORES if field == "propensity")
    written = {c: datetime.fromisoformat(p["updated_at"]).timestamp() for c, p in profiles.items()}
    last = max(written.values())
    by: dict[int, list[str]] = {}
    for customer in profiles:
        by.setdefault(partition_of(customer, partitions), []).append(customer)
    lines = {}
    for partition, members in sorted(by.items()):
        y = np.array([truth.bought_within(c, end_ts, horizon_days * DAY) for c in members], dtype=float)
        scores = np.array([float(profiles[c]["propensity"]) for c in members])
        auc = binary_metrics(y, scores)["roc_auc"]
        churn = np.mean([float(profiles[c]["churn_risk"]) for c in members])
        stale = np.array([end_ts - datetime.fromisoformat(profiles[c]["scored_at"]).timestamp() for c in members]) / DAY
        lines[partition] = (f"n {len(members)} auc {auc:.3f} mean {scores.mean():.3f} rate {y.mean():.3f} "
                            f"churn mean {churn:.3f} scored {np.median(stale):.1f} / {stale.max():.1f} days "
                            f"before the end, done {last - max(written[c] for c in members):.0f} s before the last")
    return lines
