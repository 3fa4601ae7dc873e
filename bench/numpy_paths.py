"""What numpy over a batch would save where the engine still learns or scores one at a time in Python: the
segments' k-means (assignment and update) and the learned policy's candidate scoring.

    python bench/numpy_paths.py [--customers 500] [--days 12] [--batches 50,500] [--passes 5]

Part 1, k-means. A synthetic log is replayed through `Personalizer.process`; the segment learner's inputs (each
event's feature dict) of the second half are recorded, with the learner as it stood at the half. Then, each from a
copy of that learner:
- one at a time: `SegmentModel.learn_predict_one`, as the engine runs (scaler learned, nearest centre, centre moved);
- numpy, a batch at a time: the dicts to one array (fixed feature order), the scaler's running statistics merged with
  the batch's (Chan et al.'s parallel update), the batch standardised with them, every row assigned to the centre
  nearest it as the centres stood at the batch's start, and each centre moved by its rows in order (the same
  exponential step, in closed form). Assignment within a batch cannot see the batch's own moves: that is the
  approximation, reported as the share of events given the same segment as one at a time, and the adjusted Rand
  index between the two.
Part 2, candidate scoring. The learned policy's last 3,000 decisions of a replay (bench/decide_cost.py) are scored
by `Candidates.logits` (inputs looked up and folded into the logit in one Python loop) and by the same lookups
written into rows, then one numpy product with the weights: µs per decision, and the largest difference between
the two logits.
Prints µs per event (part 1) and per decision (part 2), min of --passes, and writes bench/results/numpy_paths.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from sklearn.metrics import adjusted_rand_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from decide_cost import LOG_STARTS, captured_requests  # noqa: E402

from models.learners.segments import SegmentModel  # noqa: E402
from models.personalizer import Personalizer  # noqa: E402
from models.policies.candidate_features import (  # noqa: E402
    NEVER_BOUGHT_DAYS,
    REPEAT_RATE,
    Candidates,
    CandidateScorer,
    collect,
)
from models.policies.learned import LearnedPolicy  # noqa: E402
from models.settings import ModelSettings  # noqa: E402
from models.state import DAY, CustomerState  # noqa: E402
from schemas.events import parse_event  # noqa: E402
from streams.datasets.synthetic import SyntheticShop, history  # noqa: E402


def best_of(passes: int, run: Callable[[], Any]) -> tuple[float, Any]:
    """The fastest of `passes` runs (seconds) and the last run's result."""
    best, result = math.inf, None
    for _ in range(passes):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


# --- part 1: k-means ----------------------------------------------------------------------------------------
def recorded_segment_inputs(customers: int, days: float) -> tuple[SegmentModel, list[dict[str, float]]]:
    """The segment learner at the log's half, and the feature dicts it learned from in the second half."""
    shop = SyntheticShop(n_customers=customers, seed=4, prefix="np")
    log = [parse_event(kind, orjson.dumps(body)) for kind, body in history(shop, days, LOG_STARTS)]
    personalizer = Personalizer(ModelSettings())
    segments = personalizer.learner("segments")
    assert isinstance(segments, SegmentModel)
    states: dict[str, CustomerState] = {}
    half = len(log) // 2
    for event in log[:half]:
        personalizer.process(states.setdefault(event.customer_id, CustomerState(event.customer_id)), event)
    at_half = copy.deepcopy(segments)
    inputs: list[dict[str, float]] = []
    learn = segments.learn_predict_one

    def recording(x: dict[str, float]) -> int:
        inputs.append(dict(x))
        return learn(x)

    segments.learn_predict_one = recording  # type: ignore[method-assign]
    for event in log[half:]:
        personalizer.process(states.setdefault(event.customer_id, CustomerState(event.customer_id)), event)
    return at_half, inputs


def one_at_a_time(model: SegmentModel, inputs: Sequence[dict[str, float]]) -> list[int]:
    model = copy.deepcopy(model)
    return [model.learn_predict_one(x) for x in inputs]


class NumpyKMeans:
    """The segment learner's state as arrays: scaler counts, means and variances, distance weights, centres."""

    def __init__(self, model: SegmentModel, features: Sequence[str]) -> None:
        self.features = list(features)
        scaler = model.scaler
        self.count = np.array([scaler.counts[f] for f in features], dtype=float)
        self.mean = np.array([scaler.means[f] for f in features], dtype=float)
        self.var = np.array([scaler.vars[f] for f in features], dtype=float)
        self.weight = np.array([model.affinity_weight if f.startswith("aff_") else 1.0 for f in features])
        self.segments = sorted(model.kmeans.centers)
        self.centres = np.array([[model.kmeans.centers[s][f] for f in features] for s in self.segments])
        self.step = model.kmeans.halflife

    def learn_predict_many(self, rows: list[dict[str, float]]) -> list[int]:
        features = self.features
        x = np.array([[row.get(f, 0.0) for f in features] for row in rows])
        # The scaler's statistics merged with the batch's (population variance, as River's StandardScaler keeps).
        n = float(len(rows))
        batch_mean = x.mean(axis=0)
        batch_var = x.var(axis=0)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total
        self.count = total
        deviation = np.sqrt(self.var)
        z = np.divide(x - self.mean, deviation, out=np.zeros_like(x), where=deviation > 0) * self.weight
        distances = ((z[:, None, :] - self.centres[None, :, :]) ** 2).sum(axis=2)
        nearest = distances.argmin(axis=1)
        keep = 1.0 - self.step
        for c in range(len(self.segments)):
            mine = z[nearest == c]
            if len(mine):  # c <- c + step * (z - c), row after row: c (1-s)^m + s * sum (1-s)^(m-1-i) z_i
                m = len(mine)
                decay = keep ** np.arange(m - 1, -1, -1)
                self.centres[c] = self.centres[c] * keep**m + self.step * (decay[:, None] * mine).sum(axis=0)
        return [self.segments[i] for i in nearest]


def numpy_batches(model: SegmentModel, inputs: Sequence[dict[str, float]], batch: int) -> list[int]:
    features = sorted({name for x in inputs for name in x} | set(model.scaler.means))
    state = NumpyKMeans(model, features)
    found: list[int] = []
    for start in range(0, len(inputs), batch):
        found += state.learn_predict_many(list(inputs[start:start + batch]))
    return found


# --- part 2: candidate scoring -------------------------------------------------------------------------------
INPUTS = ("relevance", "together_strength", "seen_lately", "log_price", "affinity", "log_times", "order_share",
          "log_share", "bought_lately", "within_week", "within_month", "due", "repeat_rate", "repeat_x_share",
          "times_x_lately", "popularity", "never_bought", "repeat_x_never", "popularity_x_never", "sources", "one")


def numpy_logits(found: Candidates, scorer: CandidateScorer) -> np.ndarray:
    """`found.logits(scorer)`'s numbers: the same lookups per candidate written into a row, one product."""
    state, items, share, bought, now_ts, repeat_rates = found._inputs
    info_of, weight_of, bought_get, share_get = items.info.get, items.item_weight.get, bought.get, share.get
    rate_of = (repeat_rates or {}).get
    top = items.popular(None, k=1)
    log_top = math.log1p(weight_of(top[0], 0.0)) if top else 0.0
    top_or_inf = log_top if log_top > 0 else math.inf
    seen_get = {item_id: 0.7**age for age, item_id in enumerate(reversed(state.recent_items))}.get
    rows = []
    for item_id, (relevance, _, _, by, together_strength) in found._proposed.items():
        info = info_of(item_id)
        log_price, affinity = (math.log1p(info.price) / 5.0, share_get(info.category, 0.0)) if info is not None \
            else (0.0, share_get("", 0.0))
        repeat = rate_of(item_id, REPEAT_RATE)
        popularity = math.log1p(weight_of(item_id, 0.0)) / top_or_inf
        counted = bought_get(item_id)
        if counted is None:
            history = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, repeat, 0.0, 0.0, popularity, 1.0, repeat, popularity)
        else:
            days = min((now_ts - counted[1]) / DAY, NEVER_BOUGHT_DAYS)
            log_times, order_share, log_share, lately, due = found._bought(counted[0], days)
            history = (log_times, order_share, log_share, lately, 1.0 if days < 7.0 else 0.0,
                       1.0 if 7.0 <= days < 30.0 else 0.0, due, repeat, repeat * order_share, log_times * lately,
                       popularity, 0.0, 0.0, 0.0)
        rows.append((relevance, together_strength, seen_get(item_id, 0.0), log_price, affinity, *history,
                     scorer.by_sources[by], 1.0))
    weights = np.array([*scorer.weights[:12], scorer.weights[12], scorer.weights[13], scorer.weights[14],
                        scorer.weights[15], scorer.w_never, scorer.w_repeat_never, scorer.w_popularity_never, 1.0,
                        scorer.intercept + scorer.w_propensity * found.propensity + scorer.w_churn * found.churn])
    return np.array(rows) @ weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--days", type=float, default=12.0)
    parser.add_argument("--batches", default="50,500")
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    result: dict[str, Any] = {}

    model, inputs = recorded_segment_inputs(args.customers, args.days)
    seconds, reference = best_of(args.passes, lambda: one_at_a_time(model, inputs))
    kmeans: dict[str, Any] = {"events": len(inputs), "one_at_a_time_us": round(seconds / len(inputs) * 1e6, 2)}
    for batch in (int(b) for b in args.batches.split(",")):
        seconds, found = best_of(args.passes, lambda batch=batch: numpy_batches(model, inputs, batch))
        kmeans[f"numpy_{batch}"] = {
            "us_per_event": round(seconds / len(inputs) * 1e6, 2),
            "same_segment": round(float(np.mean(np.array(found) == np.array(reference))), 4),
            "adjusted_rand": round(float(adjusted_rand_score(reference, found)), 4)}
    result["kmeans"] = kmeans

    policy, requests = captured_requests("learned", args.customers, args.days, 3000)
    assert isinstance(policy, LearnedPolicy)
    scorer = policy._scorer_of(policy.response)
    found = [collect(r.state, policy.items, policy.favourites, r.outputs, r.excluded, r.now_ts,
                     repeat_rates=policy.response.repeat_rates()) for r in requests]
    python_s, python_logits = best_of(args.passes, lambda: [f.logits(scorer) for f in found])
    numpy_s, numpy_rows = best_of(args.passes, lambda: [numpy_logits(f, scorer) for f in found])
    gaps = []
    for ours, theirs, candidates in zip(python_logits, numpy_rows, found, strict=True):
        # (Candidates.logits adds 1e-6 x relevance to break ties.)
        plain = np.array([z - 1e-6 * candidates._proposed[item][0] for z, item in ours])
        gaps.append(float(np.max(np.abs(plain - theirs))))
    gap = max(gaps)
    result["candidates"] = {"decisions": len(found),
                            "mean_candidates": round(float(np.mean([len(f) for f in found])), 1),
                            "python_us": round(python_s / len(found) * 1e6, 2),
                            "numpy_us": round(numpy_s / len(found) * 1e6, 2), "largest_logit_difference": gap}
    out = ROOT / "bench" / "results" / "numpy_paths.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    print(f"k-means, µs per event: one at a time {kmeans['one_at_a_time_us']}; "
          + "; ".join(f"numpy batches of {k[6:]}: {v['us_per_event']} (same segment {v['same_segment']:.1%}, "
                      f"ARI {v['adjusted_rand']})" for k, v in kmeans.items() if k.startswith("numpy_")))
    c = result["candidates"]
    print(f"candidate scoring, µs per decision ({c['mean_candidates']} candidates): Python loop {c['python_us']}, "
          f"rows and one numpy product {c['numpy_us']} (largest logit difference {gap:.1e})")


if __name__ == "__main__":
    main()
