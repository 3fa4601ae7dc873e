"""How a delayed-label score's level follows Ta Feng's base rate from day to day, offline.

    python bench/tafeng_daily_level.py [--score propensity] [--start 2000-12-20] [--days 56]

Ta Feng is replayed in event time through the Personalizer (timer visits included, as `perso evaluate` does;
policy `none`, the offers are not what is measured). At the start of each day from `--start`, every known
customer is scored and the scores are set against what they did within the score's horizon. Per day: the
customers, the mean score, the observed rate, ECE and ROC AUC; then the means over the days. The base rate
swings with the log's holidays (a week with almost no sales before Christmas, the Chinese New Year), which
delayed labels only report a horizon late: the mean |mean score - rate| says how far the level trails.
Takes ~10 minutes on one core.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.evaluation.metrics import binary_metrics  # noqa: E402
from models.evaluation.outcomes import PurchaseTimes  # noqa: E402
from models.features import behaviour_features  # noqa: E402
from models.learners.delayed import DelayedLabelLearner  # noqa: E402
from models.personalizer import Personalizer  # noqa: E402
from models.settings import ModelSettings  # noqa: E402
from models.state import DAY  # noqa: E402
from models.timeline import Timeline  # noqa: E402
from streams.datasets.public_logs import read_tafeng  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--score", default="propensity", choices=("propensity", "churn_risk"))
    parser.add_argument("--start", default="2000-12-20", help="first scoring day (UTC midnight)")
    parser.add_argument("--days", type=int, default=56)
    args = parser.parse_args()

    events = sorted(read_tafeng(), key=lambda e: e.epoch)
    truth = PurchaseTimes.of(events)
    personalizer = Personalizer(ModelSettings(policy="none"))
    learner = next(learner for learner in personalizer.learners
                   if isinstance(learner, DelayedLabelLearner) and learner.output == args.score)
    first = datetime.fromisoformat(args.start).replace(tzinfo=UTC).timestamp()
    dates = [first + k * DAY for k in range(args.days) if first + k * DAY + learner.horizon_s <= events[-1].epoch]
    timeline = Timeline(personalizer)
    rows: list[dict[str, float]] = []
    began = time.monotonic()
    print("day | customers | mean score | rate | ECE | AUC")
    for event in events:
        while dates and dates[0] <= event.epoch:
            date = dates.pop(0)
            timeline.advance(date)
            scores = np.array([learner.predict_proba(behaviour_features(state, date))
                               for state in timeline.states.values()])
            bought = np.array([truth.bought_within(customer, date, learner.horizon_s)
                               for customer in timeline.states], dtype=bool)
            labels = (bought if learner.purchase_is_positive else ~bought).astype(float)
            figures = binary_metrics(labels, scores)
            rows.append({"mean": float(scores.mean()), "rate": float(labels.mean()), "ece": figures["ece"],
                         "auc": figures["roc_auc"]})
            print(f"{datetime.fromtimestamp(date, UTC).date()} | {len(scores):,} | {scores.mean():.3f} | "
                  f"{labels.mean():.3f} | {figures['ece']:.3f} | {figures['roc_auc']:.4f}", flush=True)
        if not dates:
            break
        timeline.process(event)
    gaps = [abs(row["mean"] - row["rate"]) for row in rows]
    print(f"{args.score} over {len(rows)} days: mean |mean score - rate| {np.mean(gaps):.4f} (max {max(gaps):.3f}), "
          f"mean ECE {np.mean([row['ece'] for row in rows]):.4f}, mean AUC {np.mean([row['auc'] for row in rows]):.4f} "
          f"({time.monotonic() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
