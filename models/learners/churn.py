"""Churn risk: P(the customer does not buy within the churn horizon), from delayed labels
(models/learners/delayed.py), learned, evaluated and re-scored like propensity.

>>> from models.state import CustomerState
>>> ChurnModel(horizon_days=30).predict(CustomerState("c1"), now_ts=0.0)
{'churn_risk': 0.5}
"""

from __future__ import annotations

from models.learners.base import register_learner
from models.learners.delayed import DelayedLabelLearner
from models.settings import ModelSettings


@register_learner
class ChurnModel(DelayedLabelLearner):
    name = "churn"
    version = "churn-2"
    output = "churn_risk"
    purchase_is_positive = False
    # Its labels come a month late and one per customer per 3 days, a quarter of propensity's: at propensity's
    # step it was still learning when scored (measured in docs/model-quality.md, "churn risk was short of steps").
    learning_rate = 1.0

    @classmethod
    def from_settings(cls, settings: ModelSettings) -> ChurnModel:
        # Longer horizon, fewer snapshots: at most 12 pending, so one per 3 days (horizon / 10, see
        # DelayedLabelLearner) is enough to learn who slips away over a month.
        return cls(horizon_days=settings.churn_horizon_days, snapshot_every_s=86_400.0, max_pending=12,
                   model=settings.score_model)
