"""Logistic regression on standardised features, learned a batch of labels at a time in numpy, predicting one
customer at a time in plain Python from weights folded after each batch.

`AveragedLogistic` (models/learners/delayed.py) learns one label per River call chain: a scaler update, a
gradient step and the averaging, each a loop over 26 features in Python dicts, ~24 µs a label, and propensity
settles about one label per event in a live worker (docs/benchmarks.md). Here the labels wait in a buffer
and every `batch` of them is one numpy step, River's `learn_many` arithmetic without its pandas frame:
- the scaler's running mean and variance merge the batch's (Chan, Golub and LeVeque's parallel update: the
  same statistics as River's one-at-a-time StandardScaler, up to rounding);
- one AdaGrad step on the batch's mean gradient (with L2), the intercept its own plain step;
- the averaged weights the scores use move as `AveragedLogistic`'s would over the batch's labels (rank-weighted
  early on, then a window of ~`window` labels), towards the batch's new weights.
Measured by bench/minibatch_labels.py: at 50 labels a batch, 7-9x cheaper a label at the same forward AUC for
propensity; churn risk lost AUC when batched, so it stays one at a time. Propensity uses it when
PERSO_PROPENSITY_BATCH_LABELS is above 1 (off by default: through the worker on Ta Feng its ECE read 0.043-0.048
against 0.034-0.039 one at a time, docs/model-quality.md). A checkpoint restored under another setting is carried
over both ways (models/learners/delayed.py: `batched` and `one_at_a_time`).

Scoring folds the scaler into the averaged weights once a batch (coefficient = weight / deviation, and one
offset), so a customer's margin is one C-level dot product over the features in their fixed order.

Labels still in the buffer are part of the learner's state: they are checkpointed with it and learned by
the next batch after a restore (or at once, when the restore goes back to one at a time), so none is lost or
learned twice.

>>> import random
>>> rng = random.Random(7)
>>> model = MiniBatchLogistic(("orders", "noise"), batch=50)
>>> for _ in range(3000):
...     orders = rng.uniform(0, 5)
...     model.learn_one({"orders": orders, "noise": rng.gauss(0, 1)}, rng.random() < orders / 5)
>>> model.n, len(model.pending)  # 60 batches learned, nothing waiting
(3000, 0)
>>> model.margin_one({"orders": 4.0, "noise": 0.0}) > 0 > model.margin_one({"orders": 1.0, "noise": 0.0})
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import mul
from typing import Any

import numpy as np

from models.calibration import sigmoid

ADAGRAD_EPS = 1e-8  # River's AdaGrad default
TOO_SMALL = 1e-9  # a standard deviation below this share of the feature's size is rounding: the feature is constant


class MiniBatchLogistic:
    """P(y | x) by logistic regression on standardised `features`, learned `batch` labels at a time."""

    def __init__(self, features: Sequence[str], learning_rate: float = 0.05, l2: float = 1e-4,
                 window: int = 300_000, batch: int = 50, intercept_lr: float = 0.01) -> None:
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        self.features = tuple(features)
        self.learning_rate, self.l2, self.window, self.batch, self.intercept_lr = (
            learning_rate, l2, window, batch, intercept_lr)
        width = len(self.features)
        self.count = 0  # labels the scaler has seen
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)  # sum of squared deviations: the variance is m2 / count
        self.learning_weights = np.zeros(width)  # the gradient steps' own weights
        self.squares = np.zeros(width)  # AdaGrad's sums of squared gradients
        self.learning_intercept = 0.0
        self.averaged = np.zeros(width)  # what scores use
        self.intercept = 0.0
        self.n = 0  # labels learned (batches x batch)
        self.pending: list[tuple[tuple[float, ...], bool]] = []  # labels waiting for their batch (checkpointed)
        self._folded: tuple[tuple[float, ...], float] | None = None  # derived: (coefficients, offset)

    # --- learning ----------------------------------------------------------------------------------
    def learn_one(self, x: Mapping[str, float], y: bool) -> None:
        self.pending.append((tuple(map(x.__getitem__, self.features)), bool(y)))
        if len(self.pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        """Learn the labels waiting, as one batch (however many there are)."""
        if not self.pending:
            return
        rows = np.array([values for values, _ in self.pending], dtype=float)
        labels = np.array([1.0 if label else 0.0 for _, label in self.pending])
        self.pending = []
        size = len(rows)
        # The scaler: the batch's mean and squared deviations merged into the running ones.
        batch_mean = rows.mean(axis=0)
        delta = batch_mean - self.mean
        total = self.count + size
        self.m2 += ((rows - batch_mean) ** 2).sum(axis=0) + delta**2 * (self.count * size / total)
        self.mean += delta * (size / total)
        self.count = total
        deviation = self._deviation()
        z = np.divide(rows - self.mean, deviation, out=np.zeros_like(rows), where=deviation > 0)
        # One AdaGrad step on the batch's mean gradient of the log loss, with L2; the intercept its own step.
        weights = self.learning_weights
        errors = 1.0 / (1.0 + np.exp(-(z @ weights + self.learning_intercept))) - labels
        gradient = z.T @ errors / size + self.l2 * weights
        self.learning_intercept -= self.intercept_lr * float(errors.mean())
        self.squares += gradient**2
        weights -= self.learning_rate * gradient / np.sqrt(self.squares + ADAGRAD_EPS)
        # The average moves as AveragedLogistic's would over `size` labels whose steps all ended here: each label's
        # rate is max(min(1, 3/k), 1/window) for the k-th label learned.
        kept = 1.0
        for k in range(self.n + 1, self.n + size + 1):
            kept *= 1.0 - max(min(1.0, 3.0 / k), 1.0 / self.window)
        self.averaged = weights + kept * (self.averaged - weights)
        self.intercept = self.learning_intercept + kept * (self.intercept - self.learning_intercept)
        self.n += size
        self._folded = None

    def _deviation(self) -> np.ndarray:
        """Each feature's standard deviation so far; 0 for one that has not varied. A batch's merge leaves a
        constant feature a variance of rounding (1e-26, not River's exact 0), which would scale it by 1e13."""
        if not self.count:
            return np.zeros_like(self.m2)
        deviation = np.sqrt(self.m2 / self.count)
        deviation[deviation <= TOO_SMALL * np.maximum(1.0, np.abs(self.mean))] = 0.0
        return deviation

    # --- predicting --------------------------------------------------------------------------------
    def _fold(self) -> tuple[tuple[float, ...], float]:
        folded = self._folded
        if folded is None:
            deviation = self._deviation()
            coefficients = np.divide(self.averaged, deviation, out=np.zeros_like(self.averaged), where=deviation > 0)
            folded = self._folded = (tuple(coefficients.tolist()), -float(coefficients @ self.mean))
        return folded

    def margin_one(self, x: Mapping[str, float]) -> float:
        """averaged weights . standardised x, without the intercept: how this customer ranks against the others.
        x must name every feature (a KeyError says which is missing)."""
        coefficients, offset = self._fold()
        return offset + sum(map(mul, coefficients, map(x.__getitem__, self.features)))

    def predict_proba_one(self, x: Mapping[str, float]) -> dict[bool, float]:
        p = sigmoid(self.intercept + self.margin_one(x))
        return {True: p, False: 1.0 - p}

    def contributions(self, x: Mapping[str, float]) -> dict[str, float]:
        """Each feature's term of the margin (averaged weight x standardised value): what a score leans on."""
        coefficients, _ = self._fold()
        return {name: coefficient * (x[name] - mean)
                for name, coefficient, mean in zip(self.features, coefficients, self.mean.tolist(), strict=True)}

    # --- checkpoints -------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_folded"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._folded = None
