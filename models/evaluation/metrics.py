"""Quality figures of probabilistic scores against what happened: ranking (ROC AUC, PR AUC), log loss, and
calibration (expected calibration error with its reliability table). From scikit-learn, not by hand.

>>> report = binary_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
>>> report["roc_auc"], report["positives"], report["n"]
(0.75, 2, 4)

Whether one score ranks the same customers better than another, with a paired bootstrap interval:

>>> rng = np.random.default_rng(0)
>>> y = rng.random(400) < 0.3
>>> sharp, blurred = y + rng.normal(0, 0.5, 400), y + rng.normal(0, 1.5, 400)
>>> gap = auc_difference(y, sharp, blurred, resamples=200)
>>> gap["difference"] > 0 and gap["low"] > 0
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import bootstrap, rankdata
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

BINS = 10


def reliability(labels: np.ndarray, scores: np.ndarray, bins: int = BINS) -> tuple[list[dict[str, float]], float]:
    """Mean score against observed rate per equal-width score bin, and the count-weighted mean gap (ECE)."""
    table = []
    which = np.minimum((scores * bins).astype(int), bins - 1)
    for b in range(bins):
        mask = which == b
        count = int(mask.sum())
        if count:
            table.append({"from": b / bins, "to": (b + 1) / bins, "predicted": float(scores[mask].mean()),
                          "observed": float(labels[mask].mean()), "count": float(count)})
    total = sum(row["count"] for row in table)
    ece = sum(row["count"] / total * abs(row["predicted"] - row["observed"]) for row in table) if total else 0.0
    return table, float(ece)


def binary_metrics(labels: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray) -> dict[str, Any]:
    y = np.asarray(labels, dtype=float)
    p = np.clip(np.asarray(scores, dtype=float), 1e-6, 1 - 1e-6)
    report: dict[str, Any] = {"n": len(y), "positives": int(y.sum()),
                              "base_rate": float(y.mean()) if len(y) else 0.0}
    if len(y) == 0 or y.min() == y.max():
        return report | {"roc_auc": None, "pr_auc": None, "log_loss": None, "ece": None, "reliability": []}
    table, ece = reliability(y, p)
    return report | {"roc_auc": float(roc_auc_score(y, p)), "pr_auc": float(average_precision_score(y, p)),
                     "log_loss": float(log_loss(y, p)), "ece": ece, "reliability": table}


def auc_difference(labels: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray,
                   other: Sequence[float] | np.ndarray, resamples: int = 1000, confidence: float = 0.95,
                   seed: int = 0) -> dict[str, float]:
    """ROC AUC of `scores` minus that of `other` on the same customers, with a paired bootstrap percentile
    interval (scipy): customers are resampled together with both their scores, so what the two share (who
    was easy to rank) cancels out, and a gap far smaller than either AUC's own interval can be told apart."""
    y = np.asarray(labels, dtype=float)
    a, b = np.asarray(scores, dtype=float), np.asarray(other, dtype=float)

    def gap(y_: np.ndarray, a_: np.ndarray, b_: np.ndarray, axis: int = -1) -> np.ndarray:
        return _rank_auc(y_, a_, axis) - _rank_auc(y_, b_, axis)

    # Percentile, not BCa: BCa's jackknife would take an AUC per customer left out. Batches bound the memory
    # of the vectorised resamples (resamples x customers floats at once otherwise).
    result = bootstrap((y, a, b), gap, paired=True, vectorized=True, n_resamples=resamples, batch=100,
                       confidence_level=confidence, method="percentile", random_state=seed)
    low, high = result.confidence_interval
    return {"difference": float(gap(y, a, b)), "low": float(low), "high": float(high),
            "resamples": float(resamples)}


def _rank_auc(y: np.ndarray, scores: np.ndarray, axis: int) -> np.ndarray:
    """ROC AUC along `axis` from the Mann-Whitney rank sum (ties count half, as in scikit-learn); 0.5 where
    a resample holds one class only."""
    ranks = rankdata(scores, axis=axis)
    positives = y.sum(axis=axis)
    negatives = y.shape[axis] - positives
    rank_sum = (ranks * y).sum(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
    return np.where((positives > 0) & (negatives > 0), auc, 0.5)
