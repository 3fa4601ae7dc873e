"""Scores whose truth is known only later: "will this customer buy within H days?" and its mirror, "will
they not?". A subclass names the output and which way a purchase settles a label.

How a score becomes honest:
- It is asked at the moments the product shows it: at each event, and at timer visits between events (a
  silent customer is scored as their silence grows), so the learner sees silence, not only activity.
- Each of those moments may leave a snapshot of the customer's behaviour features (models/features.py) in
  the customer's state. A purchase within the horizon marks its outcome; the snapshot is learned when the
  horizon has passed in stream time (at a timer visit), whichever its outcome, whether or not the customer
  ever comes back (otherwise only returning customers would ever be labelled). Learning a purchase at once
  and a non-purchase only a horizon later would feed the model positives up to now and negatives up to a
  horizon ago: it would over-predict (it did: 0.99 for a group of whom 30% bought).
- Snapshots are thinned to one per `snapshot_every_s` (spread to span the horizon), each a uniform sample of
  the moments of its window (reservoir sampling): learning from every session's first event only would
  skew what the model knows towards session starts.
- The classifier learns each label once it settles; its score is calibrated online (models/calibration.py)
  so that of the customers scored p, a fraction p do it. The linear classifier's score reaches the
  calibrator without its intercept: the classifier ranks, the calibrator's slowly decaying bins set the level
  (an intercept follows the latest labels, which are a horizon old, so the level it carried swung with the
  base rate of one to two horizons ago).

The classifier is a logistic regression on standardised features (AdaGrad steps, L2, averaged): River's, one
label at a time (`AveragedLogistic`), or the same arithmetic in numpy on `batch_labels` labels at a time
(models/learners/minibatch.py; propensity's with PERSO_PROPENSITY_BATCH_LABELS above 1: about one label settles
per event, and a batch costs a seventh; off by default, its worker-level ECE on Ta Feng was worse); or River's Hoeffding
adaptive tree (measured worse and less stable on Ta Feng: docs/model-quality.md).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import cache
from typing import Any, ClassVar

import numpy as np
from river import linear_model, metrics, optim, preprocessing, tree

from models.calibration import IsotonicBins, sigmoid
from models.features import BEHAVIOUR_FEATURES, behaviour_features
from models.learners.base import EventContext, Learner, TimeContext
from models.learners.minibatch import MiniBatchLogistic
from models.learners.reasons import in_words
from models.learners.scaling import learn_standardised, standardised_dot
from models.state import DAY, CustomerState

PRIOR = 0.5  # before anything is learned: no opinion rather than a confident guess
STORED_DECIMALS = 4
# A customer silent this long leaves no more snapshots (the label visits stop with them).
MAX_SILENCE_S = 365 * 86_400.0
# The self-measured figures (for /metrics) score one label in this many: River's ROCAUC and LogLoss cost 5.1 µs a
# label, as much as the classifier's own step, for a figure that a sample of thousands of labels gives as well.
SELF_MEASURED_EVERY = 8
MODELS = ("logistic", "tree")

class AveragedLogistic:
    """Logistic regression on standardised features, predicting with its weights averaged over the last
    ~`window` labels (Polyak-Ruppert averaging): the learner keeps adapting, the scores it gives do not swing
    with the last few examples. Delayed labels are a horizon old, so the level they teach lags the base rate;
    where that rate swings from week to week (Ta Feng's holidays) a short window follows the swings a week
    late, out of phase: a 10,000-label window scored Ta Feng's fixed dates at AUC 0.680 and 300,000 at 0.720
    (docs/model-quality.md)."""

    def __init__(self, learning_rate: float = 0.05, l2: float = 1e-4, window: int = 300_000) -> None:
        self.scaler = preprocessing.StandardScaler()
        self.regression = linear_model.LogisticRegression(optimizer=optim.AdaGrad(learning_rate), l2=l2,
                                                          intercept_lr=0.01)
        self.window = window
        self.weights: dict[str, float] = {}
        self.intercept = 0.0
        self.n = 0

    def learn_one(self, x: dict[str, float], y: bool) -> None:
        self.regression.learn_one(learn_standardised(self.scaler, x), y)  # River's scaler, in one pass
        self.n += 1
        # Early on, an average of every step so far would keep the untrained first weights for long: weigh the
        # steps by their rank instead (rate 3/n: the first tenth of them keep a 0.1% share), until the window.
        rate = max(min(1.0, 3.0 / self.n), 1.0 / self.window)
        weights = self.weights
        for name, weight in self.regression.weights.items():
            average = weights.get(name, 0.0)
            weights[name] = average + rate * (weight - average)
        self.intercept += rate * (self.regression.intercept - self.intercept)

    def margin_one(self, x: dict[str, float]) -> float:
        """weights . standardised x, without the intercept: how this customer ranks against the others."""
        return standardised_dot(self.scaler, x, self.weights)

    def contributions(self, x: dict[str, float]) -> dict[str, float]:
        """Each feature's term of the margin (averaged weight x standardised value): what a score leans on."""
        weights = self.weights
        return {name: weights.get(name, 0.0) * z for name, z in self.scaler.transform_one(x).items()}

    def predict_proba_one(self, x: dict[str, float]) -> dict[bool, float]:
        p = sigmoid(self.intercept + self.margin_one(x))
        return {True: p, False: 1.0 - p}


LINEAR = (AveragedLogistic, MiniBatchLogistic)


def batched(model: AveragedLogistic, batch: int, features: Sequence[str] = BEHAVIOUR_FEATURES) -> MiniBatchLogistic:
    """A model learned one label at a time carried over to batches: its scaler, both weight vectors, intercepts and
    count. AdaGrad's sums of squared gradients are divided by the batch size, as if its steps had been batches of
    the same gradients (a mean gradient's square is the batch's sum of squares over the batch when the labels
    agree), so steps go on at a like size. `one_at_a_time` is the way back."""
    regression, scaler = model.regression, model.scaler
    carried = MiniBatchLogistic(features, learning_rate=regression.optimizer.learning_rate,
                                l2=regression.l2, window=model.window, batch=batch,
                                intercept_lr=regression.intercept_lr.learning_rate)
    names = carried.features
    count = max(int(scaler.counts.get(name, 0)) for name in names)
    carried.count = count
    carried.mean = np.array([float(scaler.means.get(name, 0.0)) for name in names])
    carried.m2 = np.array([float(scaler.vars.get(name, 0.0)) * count for name in names])
    weights, squares = regression.weights, regression.optimizer.g2
    carried.learning_weights = np.array([float(weights.get(name, 0.0)) for name in names])
    carried.squares = np.array([float(squares.get(name, 0.0)) / batch for name in names])
    carried.learning_intercept = float(regression.intercept)
    carried.averaged = np.array([float(model.weights.get(name, 0.0)) for name in names])
    carried.intercept, carried.n = float(model.intercept), model.n
    return carried


def one_at_a_time(batched: MiniBatchLogistic) -> AveragedLogistic:
    """A batched model carried back to one label at a time (`batched`'s inverse): its scaler, both weight vectors,
    intercepts and count; AdaGrad's sums times the batch size."""
    model = AveragedLogistic(learning_rate=batched.learning_rate, l2=batched.l2, window=batched.window)
    scaler, regression = model.scaler, model.regression
    count = batched.count
    for k, name in enumerate(batched.features):
        scaler.counts[name] = count
        scaler.means[name] = float(batched.mean[k])
        scaler.vars[name] = float(batched.m2[k]) / count if count else 0.0
        regression._weights[name] = float(batched.learning_weights[k])
        regression.optimizer.g2[name] = float(batched.squares[k]) * batched.batch
        model.weights[name] = float(batched.averaged[k])
    regression.intercept = batched.learning_intercept
    model.intercept, model.n = batched.intercept, batched.n
    return model


def make_classifier(kind: str, learning_rate: float, batch_labels: int = 1) -> Any:
    """The classifier of a delayed score: `kind` "logistic" (learned `batch_labels` labels at a time in numpy when
    above 1, else one at a time with River) or "tree"."""
    if kind == "logistic" and batch_labels > 1:
        return MiniBatchLogistic(BEHAVIOUR_FEATURES, learning_rate=learning_rate, batch=batch_labels)
    if kind == "logistic":
        return AveragedLogistic(learning_rate=learning_rate)
    if kind == "tree":
        return tree.HoeffdingAdaptiveTreeClassifier(grace_period=400, delta=1e-5, leaf_prediction="mc",
                                                    max_depth=6, seed=42)
    raise ValueError(f"unknown classifier {kind!r}: one of {', '.join(MODELS)}")


class DelayedLabelLearner(Learner):
    """P(outcome within `horizon_days`), per customer; output under `output`."""

    output: ClassVar[str]
    # Does a purchase within the horizon make the label positive (propensity) or negative (churn)?
    purchase_is_positive: ClassVar[bool]
    # The linear classifier's AdaGrad step: a score whose labels are few and late needs a larger one.
    learning_rate: ClassVar[float] = 0.05
    # Labels the linear classifier learns at once (models/learners/minibatch.py); 1: one at a time (River's).
    batch_labels: int = 1

    def __init__(self, horizon_days: float, snapshot_every_s: float = 3600.0, max_pending: int = 24,
                 model: str = "logistic", batch_labels: int | None = None) -> None:
        self.horizon_s = horizon_days * DAY
        # Pending snapshots must span the horizon, or the oldest are dropped before their label is known.
        self.snapshot_every_s = max(snapshot_every_s, self.horizon_s / max(1, max_pending - 2))
        self.max_pending = max_pending
        self.model = model
        if batch_labels is not None:
            self.batch_labels = batch_labels
        self.classifier = make_classifier(model, self.learning_rate, self.batch_labels)
        self.calibrator = IsotonicBins(half_life_labels=500_000)  # slow, for the same reason as the window
        self.rng = random.Random(42)
        # Progressive: a label scored before it is learned (one in SELF_MEASURED_EVERY). Self-measured on the
        # labelled snapshots, not the product's honest figure (that is models/evaluation): kept for /metrics,
        # named for what it is.
        self.auc = metrics.ROCAUC()
        self.logloss = metrics.LogLoss()
        self.n_learned = 0

    # --- learning ----------------------------------------------------------------------------------
    def observe_before(self, ctx: EventContext) -> None:
        # Before the event changes the state: a purchase settles the snapshots taken before it.
        self._settle(ctx.state, ctx.ts, purchased=ctx.is_purchase)

    def learn_one(self, ctx: EventContext) -> None:
        self._score(ctx)

    def learn_time(self, ctx: TimeContext) -> None:
        self._settle(ctx.state, ctx.ts, purchased=False)
        self._score(ctx)

    def _score(self, ctx: TimeContext) -> None:
        x = ctx.behaviour
        ctx.outputs[self.output] = self.predict_proba(x)
        self._snapshot(ctx.state, ctx.ts, x)

    def _pending(self, state: CustomerState) -> list[tuple[Any, ...]]:
        # Snapshots are tuples, replaced rather than changed in place: `CustomerState.copy` copies containers one
        # level deep, so undoing a failed event (its copy restored) must find nothing mutated inside them.
        return list(state.learner_data.get(self.name, ()))

    def _snapshot(self, state: CustomerState, now_ts: float, x: dict[str, float]) -> None:
        if now_ts - state.last_event_ts > MAX_SILENCE_S:
            return  # a year without a sign of life: no longer part of the base being scored
        pending = self._pending(state)
        # (time, features as `_stored` writes them, whether a purchase followed within the horizon so far,
        #  window start, moments seen)
        if pending and now_ts - pending[-1][3] < self.snapshot_every_s:
            ts, stored, outcome, window, seen = pending[-1]
            seen += 1
            if self.rng.random() * seen < 1.0:  # the k-th moment of the window replaces with probability 1/k
                ts, stored, outcome = now_ts, _stored(x), False
            pending[-1] = (ts, stored, outcome, window, seen)
        else:
            pending.append((now_ts, _stored(x), False, now_ts, 1))
            del pending[:-self.max_pending]
        state.learner_data[self.name] = tuple(pending)

    def _settle(self, state: CustomerState, now_ts: float, purchased: bool) -> None:
        """Mark the snapshots a purchase at `now_ts` follows within their horizon; learn those whose horizon
        has passed (each once, with the outcome it had)."""
        if not state.learner_data.get(self.name):
            return
        still: list[tuple[Any, ...]] = []
        for snapshot in self._pending(state):
            age = now_ts - snapshot[0]
            if age > self.horizon_s:
                self._learn(snapshot[1], snapshot[2] == self.purchase_is_positive)
                continue
            if purchased and age > 0 and not snapshot[2]:
                snapshot = (snapshot[0], snapshot[1], True, snapshot[3], snapshot[4])
            still.append(snapshot)
        state.learner_data[self.name] = tuple(still)

    def _learn(self, stored: str | Sequence[float], label: bool) -> None:
        values = stored_features(stored)
        if len(values) != len(BEHAVIOUR_FEATURES):
            return  # written with another feature set (an older release): its label cannot be learned
        x = dict(zip(BEHAVIOUR_FEATURES, values, strict=True))
        if self.n_learned:
            ranking = self._ranking(x)
            if self.n_learned % SELF_MEASURED_EVERY == 0:
                calibrated = self._calibrated(x, ranking)
                self.auc.update(label, calibrated)
                self.logloss.update(label, calibrated)
            self.calibrator.learn_one(ranking, label)
        self.classifier.learn_one(x, label)
        self.n_learned += 1

    # --- predicting --------------------------------------------------------------------------------
    def _raw(self, x: dict[str, float]) -> float:
        return float(self.classifier.predict_proba_one(x).get(True, 0.0))

    def _ranking(self, x: dict[str, float]) -> float:
        """The score the calibrator maps to a probability. For the linear model, its score without the intercept:
        the intercept follows the last few thousand labels (its own SGD step; the weights' average then spans
        a third of the labels so far, or the window), and labels are a horizon old, so a level carried by it
        followed the base rate of one to two horizons ago, swings included (on Ta Feng it read 0.08 for a week
        whose rate was 0.19, after a week with almost no sales). Without it the classifier only ranks, and the
        level is the calibrator's alone, from bins that decay slowly (docs/model-quality.md)."""
        if isinstance(self.classifier, LINEAR):
            return sigmoid(self.classifier.margin_one(x))
        return self._raw(x)

    def _calibrated(self, x: dict[str, float], ranking: float) -> float:
        if not self.calibrator.fitted:  # too few labels to map scores: the classifier's own probability, shrunk
            return self.calibrator.transform(self._raw(x))
        return self.calibrator.transform(ranking)

    def predict_proba(self, x: dict[str, float]) -> float:
        if self.n_learned == 0:
            return PRIOR
        return min(1.0, max(0.0, self._calibrated(x, self._ranking(x))))

    def predict(self, state: CustomerState, now_ts: float) -> dict[str, Any]:
        return {self.output: self.predict_proba(behaviour_features(state, now_ts))}

    def explain(self, state: CustomerState, now_ts: float) -> dict[str, str]:
        """The features the classifier leans on for this customer, said as the customer's values: a tree's path,
        or a linear model's largest contributions (weight x standardised value)."""
        if self.n_learned == 0:
            return {}
        x = behaviour_features(state, now_ts)
        if isinstance(self.classifier, LINEAR):
            terms = self.classifier.contributions(x)
            leaning = sorted(terms, key=lambda name: -abs(terms[name]))
        else:
            root = getattr(self.classifier, "_root", None)
            leaning = [node.feature for node in root.walk(x, until_leaf=True) if hasattr(node, "feature")
                       ] if root is not None else []
        return {f"{self.output}_reason": in_words(leaning, x)}

    def next_wake(self, state: CustomerState) -> float | None:
        """When the oldest snapshot's horizon has passed. Each visit leaves a snapshot of its own, so a silent
        customer is visited about once a day: measured, learning from fewer silent moments (one visit per
        horizon, or a daily grid learned in bursts at rarer visits) ranked worse and swung more from day to
        day on Ta Feng (docs/model-quality.md)."""
        pending = state.learner_data.get(self.name)
        return pending[0][0] + self.horizon_s + 1.0 if pending else None

    def metrics(self) -> dict[str, float]:
        return {"self_measured_roc_auc": float(self.auc.get()), "self_measured_log_loss": float(self.logloss.get()),
                "labelled": float(self.n_learned)}

    def reconfigure(self, configured: Learner) -> None:
        """A restored linear classifier takes today's batch size: carried over between one at a time and batches
        with its scaler and weights (a restart must not forget what the score learned)."""
        wanted = getattr(configured, "batch_labels", self.batch_labels)
        classifier = self.classifier
        if wanted > 1 and isinstance(classifier, AveragedLogistic):
            self.classifier = batched(classifier, wanted)
        elif wanted > 1 and isinstance(classifier, MiniBatchLogistic):
            classifier.batch = wanted  # the labels waiting stay, for the next batch
        elif isinstance(classifier, MiniBatchLogistic):
            classifier.flush()  # the labels waiting are learned as the batch they were, not dropped
            self.classifier = one_at_a_time(classifier)
        self.batch_labels = wanted  # (a learner pickled before the setting reads the class's 1)


def _stored(x: dict[str, float]) -> str:
    """The features of a snapshot kept, rounded, as one string of the rounded values' shortest decimals ("0" for
    0.0): one object instead of 26 in a state held in memory, and a tenth less JSON. float() of each part gives
    back exactly round(value, STORED_DECIMALS), so the learner learns the same numbers as from a tuple of them.
    Rounded only for a snapshot kept: most moments of a window are drawn and dropped."""
    return _decimals(tuple([x[name] for name in BEHAVIOUR_FEATURES]))


def _decimals(values: tuple[float, ...]) -> str:
    # "%.4f" has the digits round(v, 4) has (CPython's correctly rounded dtoa, 4 decimals, for both), formatted
    # in one C call: a round() per feature was most of the time of a snapshot.
    text = _format(len(values)) % values + ","
    for _ in range(STORED_DECIMALS):  # the decimals' trailing zeros, one a pass: "0.2500," -> "0.25,"
        text = text.replace("0,", ",")
    return text.replace(".,", ",")[:-1]  # a whole number: "3.," -> "3,"


@cache
def _format(n: int) -> str:
    return ",".join([f"%.{STORED_DECIMALS}f"] * n)


def stored_features(stored: str | Sequence[float]) -> tuple[float, ...]:
    """A snapshot's feature values: from `_stored`'s string, or from the list of floats that states stored
    before 2026-12 hold (still read, so those states' pending labels are learned)."""
    if isinstance(stored, str):
        return tuple(map(float, stored.split(",")))
    return tuple(stored)
