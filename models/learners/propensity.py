"""Purchase propensity: P(customer buys within the horizon), learned online from delayed labels.

A prediction made at an event becomes a training example later: positive when a purchase by the same
customer arrives within the horizon (event time), negative once the horizon has passed without one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from river import compose, linear_model, metrics, optim, preprocessing

from models.features import compact_features, expand_features
from models.learners.base import EventContext, Learner, register_learner
from models.settings import ModelSettings
from models.state import DAY

# Propensity before anything is learned: a neutral prior rather than a confident guess.
PRIOR = 0.5


@register_learner
class PropensityModel(Learner):
    """Outputs `propensity` for the customer of each event, and learns from the labels that settle."""

    name = "propensity"
    version = "logreg-1"

    @classmethod
    def from_settings(cls, settings: ModelSettings) -> PropensityModel:
        return cls(horizon_days=settings.propensity_horizon_days)

    def __init__(self, horizon_days: float = 7.0, snapshot_every_s: float = 3600.0,
                 max_pending: int = 24, learning_rate: float = 0.05) -> None:
        self.horizon_s = horizon_days * DAY
        self.snapshot_every_s = snapshot_every_s
        self.max_pending = max_pending
        self.pipeline = compose.Pipeline(
            preprocessing.StandardScaler(),
            linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate)),
        )
        self.auc = metrics.ROCAUC()
        self.logloss = metrics.LogLoss()
        self.n_learned = 0

    def observe_before(self, ctx: EventContext) -> None:
        # Before the event changes the state: a purchase settles the snapshots taken before it as positives.
        state = ctx.state
        state.pending_labels = self.settle(state.pending_labels, ctx.ts, purchased=ctx.is_purchase,
                                           categories=ctx.space.categories)

    def learn_one(self, ctx: EventContext) -> None:
        x = ctx.x
        ctx.outputs["propensity"] = self.predict_one(x)
        ctx.state.pending_labels = self.snapshot(ctx.state.pending_labels, ctx.ts, x)

    def predict_one(self, x: dict[str, float]) -> float:
        if self.n_learned == 0:
            return PRIOR
        return float(self.pipeline.predict_proba_one(x).get(True, 0.0))

    def learn_example(self, x: dict[str, float], bought: bool) -> None:
        # Progressive validation: score the example before learning from it.
        if self.n_learned:
            p = self.predict_one(x)
            self.auc.update(bought, p)
            self.logloss.update(bought, p)
        self.pipeline.learn_one(x, bought)
        self.n_learned += 1

    def settle(self, pending: list[tuple[float, Any]], now_ts: float, purchased: bool,
               categories: Sequence[str] = ()) -> list[tuple[float, Any]]:
        """Label what can be labelled at now_ts and return the still-pending snapshots.

        `pending` holds [ts, stored features] snapshots of one customer in event-time order; they are
        learned in the feature space of `categories` (the model's category features).
        """
        still_pending: list[tuple[float, Any]] = []
        for ts, stored in pending:
            if purchased and 0 <= now_ts - ts <= self.horizon_s:
                self.learn_example(expand_features(stored, categories), True)
            elif now_ts - ts > self.horizon_s:
                self.learn_example(expand_features(stored, categories), False)
            else:
                still_pending.append((ts, stored))
        return still_pending

    def snapshot(self, pending: list[tuple[float, Any]], now_ts: float, x: dict[str, float]
                 ) -> list[tuple[float, Any]]:
        """Add a snapshot to label later, at most one per snapshot interval, bounded in count.

        Stored compact (models.features.compact_features): they are most of a customer's state."""
        if pending and now_ts - pending[-1][0] < self.snapshot_every_s:
            return pending
        pending = [*pending, (now_ts, compact_features(x))]
        return pending[-self.max_pending:]

    def metrics(self) -> dict[str, float]:
        return {"roc_auc": float(self.auc.get()), "log_loss": float(self.logloss.get()),
                "labelled": float(self.n_learned)}

