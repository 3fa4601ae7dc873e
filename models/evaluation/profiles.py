"""Profiles as a reader finds them (the hash in Redis, all strings) scored against what the customers did next:
the product's own figure, after a replay through a real worker (bench/tafeng_worker.py and its test).

>>> from models.evaluation.outcomes import PurchaseTimes
>>> profiles = {"a": {"propensity": "0.9", "churn_risk": "0.1", "recency_days": "1", "frequency": "5"},
...             "b": {"propensity": "0.2", "churn_risk": "0.7", "recency_days": "40", "frequency": "1"}}
>>> figures = score_profiles(profiles, PurchaseTimes({"a": [105.0]}), at_ts=100.0)
>>> figures["propensity"]["engine"]["roc_auc"], figures["churn_risk"]["recency-only"]["roc_auc"]
(1.0, 1.0)
>>> figures["propensity"]["engine minus"]["frequency-only"]["difference"]
0.0
>>> flipped = {"propensity": {"flipped": np.array([0.1, 0.9])}}  # customers "a", "b"
>>> figures = score_profiles(profiles, PurchaseTimes({"a": [105.0]}), at_ts=100.0, baselines=flipped)
>>> figures["propensity"]["flipped"]["roc_auc"], figures["propensity"]["engine minus"]["flipped"]["difference"]
(0.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from models.evaluation.metrics import auc_difference, binary_metrics
from models.evaluation.outcomes import PurchaseTimes
from models.state import DAY

# (profile field, horizon in days, whether a purchase within it makes the truth positive)
SCORES = (("propensity", 7.0, True), ("churn_risk", 30.0, False))


def score_profiles(profiles: Mapping[str, Mapping[str, str]], truth: PurchaseTimes, at_ts: float,
                   horizons: Mapping[str, float] | None = None,
                   baselines: Mapping[str, Mapping[str, np.ndarray]] | None = None) -> dict[str, dict[str, Any]]:
    """Each score in the profiles against purchases after `at_ts`, beside recency-only (fewer days since the
    last purchase ranks higher) and frequency-only (more orders ranks higher) read from the same profiles, and
    the engine's AUC minus each baseline's with a paired bootstrap interval (`engine minus`). `baselines`:
    more of them per score field, name -> scores of the customers in `sorted(profiles)` order."""
    customers = sorted(profiles)
    recency = np.array([float(profiles[c]["recency_days"]) for c in customers])
    frequency = np.array([float(profiles[c]["frequency"]) for c in customers])
    # Rank-only baselines, mapped monotonically into (0, 1) for the AUC (their ECE would mean nothing).
    recent, frequent = 1 / (1 + np.log1p(recency)), frequency / (1 + frequency)
    figures: dict[str, dict[str, Any]] = {}
    for field, default_horizon, positive_if_bought in SCORES:
        horizon = (horizons or {}).get(field, default_horizon) * DAY
        y = np.array([truth.bought_within(c, at_ts, horizon) == positive_if_bought for c in customers], dtype=float)
        engine = np.array([float(profiles[c][field]) for c in customers])
        against = {"recency-only": recent if positive_if_bought else 1 - recent,
                   "frequency-only": frequent if positive_if_bought else 1 - frequent,
                   **(baselines or {}).get(field, {})}
        figures[field] = {"engine": binary_metrics(y, engine)} | {
            name: binary_metrics(y, scores) for name, scores in against.items()}
        # Paired intervals: on one log the AUCs' own intervals overlap far more than the gap between them.
        figures[field]["engine minus"] = {name: auc_difference(y, engine, scores)
                                          for name, scores in against.items()}
    return figures
