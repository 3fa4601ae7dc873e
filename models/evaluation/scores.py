"""One time-dependent score (propensity, churn risk) measured against what customers did, where the product
shows it: at each event (what an offer carries), and at fixed scoring dates for every known customer (how
a marketing team scores its base for a campaign). Beside baselines fitted on the same split, on the same
features: recency-only, frequency-only, and an offline logistic regression (scikit-learn).

The log is split in time: the baselines train on fixed dates whose outcome is known by the split (a horizon
before it: what an analyst fitting a model on the log's earlier part could use), and every figure is computed
on the dates and events after it. A moment closer to the log's end than the horizon is not scored: its truth
is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from models.evaluation.metrics import binary_metrics
from models.evaluation.outcomes import PurchaseTimes
from models.features import BEHAVIOUR_FEATURES

BASELINES: dict[str, tuple[str, ...]] = {
    "recency-only": ("log_days_since_purchase",),
    "frequency-only": ("log_orders",),
    "offline logistic regression": BEHAVIOUR_FEATURES,
}


@dataclass
class Moments:
    """Scored moments: who, when, the engine's score, the features then."""

    customers: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    features: list[list[float]] = field(default_factory=list)

    def add(self, customer: str, ts: float, score: float, x: dict[str, float]) -> None:
        self.customers.append(customer)
        self.times.append(ts)
        self.scores.append(score)
        self.features.append([x[name] for name in BEHAVIOUR_FEATURES])

    def matrix(self, columns: tuple[str, ...]) -> np.ndarray:
        index = [BEHAVIOUR_FEATURES.index(c) for c in columns]
        if not self.features:
            return np.empty((0, len(index)))
        return np.asarray(self.features, dtype=float)[:, index]


class ScoreEvaluation:
    def __init__(self, output: str, horizon_s: float, purchase_is_positive: bool, start_ts: float,
                 end_ts: float) -> None:
        self.output = output
        self.horizon_s = horizon_s
        self.purchase_is_positive = purchase_is_positive
        self.last_scorable_ts = end_ts - horizon_s
        # Halfway through what can be scored: a longer horizon leaves less of the log to score.
        self.split_ts = start_ts + (self.last_scorable_ts - start_ts) / 2
        self.train = Moments()  # fixed dates before the split: the baselines learn from these
        self.dates = Moments()  # fixed dates after the split
        self.events = Moments()  # event moments after the split

    def scorable(self, ts: float) -> bool:
        return ts <= self.last_scorable_ts

    def add_event(self, customer: str, ts: float, score: float, x: dict[str, float]) -> None:
        if self.split_ts <= ts <= self.last_scorable_ts:
            self.events.add(customer, ts, score, x)

    def add_date(self, customer: str, ts: float, score: float, x: dict[str, float]) -> None:
        if ts + self.horizon_s <= self.split_ts:
            self.train.add(customer, ts, score, x)
        elif self.split_ts <= ts <= self.last_scorable_ts:
            self.dates.add(customer, ts, score, x)

    def labels(self, moments: Moments, truth: PurchaseTimes) -> np.ndarray:
        bought = np.array([truth.bought_within(c, t, self.horizon_s) for c, t in zip(moments.customers,
                                                                                     moments.times, strict=True)],
                          dtype=bool)
        return (bought if self.purchase_is_positive else ~bought).astype(float)

    def report(self, truth: PurchaseTimes) -> dict[str, Any]:
        train_y = self.labels(self.train, truth)
        fitted = {name: _fit(self.train.matrix(columns), train_y) for name, columns in BASELINES.items()}
        out: dict[str, Any] = {"horizon_days": self.horizon_s / 86_400, "trained_baselines_on": len(train_y)}
        for where, moments in (("fixed_dates", self.dates), ("event_moments", self.events)):
            y = self.labels(moments, truth)
            scores = {"engine": np.asarray(moments.scores, dtype=float)}
            for name, columns in BASELINES.items():
                model = fitted[name]
                if model is not None and moments.scores:
                    scores[name] = model.predict_proba(moments.matrix(columns))[:, 1]
            section = {name: binary_metrics(y, scores[name]) if name in scores else {"n": len(y), "roc_auc": None}
                       for name in ("engine", *BASELINES)}
            out[where] = section
            if where == "fixed_dates":
                times = np.asarray(moments.times)
                out["within_dates"] = {name: within_dates(y, p, times) for name, p in scores.items()}
        return out


def within_dates(y: np.ndarray, scores: np.ndarray, times: np.ndarray) -> dict[str, Any]:
    """Ranking and level within each scoring date, averaged over the dates: how a campaign scoring its base on
    one day sees the scores. The pooled AUC over all dates also punishes a level that lags the base rate's
    swings from week to week (delayed labels are a horizon old); this one does not, and `mean_level_gap`
    shows the lag on its own: the mean |mean score - observed rate| of a date.

    >>> figures = within_dates(np.array([0, 1, 0, 1.0]), np.array([0.1, 0.9, 0.6, 0.7]), np.array([1, 1, 2, 2]))
    >>> figures["mean_roc_auc"], figures["dates"]
    (1.0, 2)
    """
    aucs, gaps = [], []
    for date in np.unique(times):
        on = times == date
        if 0 < y[on].sum() < on.sum():
            aucs.append(float(roc_auc_score(y[on], scores[on])))
            gaps.append(float(abs(scores[on].mean() - y[on].mean())))
    if not aucs:
        return {"dates": 0, "mean_roc_auc": None, "min_roc_auc": None, "mean_level_gap": None}
    return {"dates": len(aucs), "mean_roc_auc": float(np.mean(aucs)), "min_roc_auc": float(min(aucs)),
            "mean_level_gap": float(np.mean(gaps))}


def _fit(x: np.ndarray, y: np.ndarray) -> Any:
    if len(y) == 0 or y.min() == y.max():
        return None
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
