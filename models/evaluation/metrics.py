"""Quality figures of probabilistic scores against what happened: ranking (ROC AUC, PR AUC), log loss, and
calibration (expected calibration error with its reliability table). From scikit-learn, not by hand.

>>> report = binary_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
>>> report["roc_auc"], report["positives"], report["n"]
(0.75, 2, 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
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
