"""Purchase propensity: P(the customer buys within the horizon), from delayed labels (models/learners/delayed.py).

>>> from models.state import CustomerState
>>> model = PropensityModel(horizon_days=7)
>>> model.predict(CustomerState("c1"), now_ts=0.0)  # nothing learned yet: no opinion
{'propensity': 0.5}
"""

from __future__ import annotations

from models.learners.base import register_learner
from models.learners.delayed import DelayedLabelLearner
from models.settings import ModelSettings


@register_learner
class PropensityModel(DelayedLabelLearner):
    name = "propensity"
    version = "propensity-3"
    output = "propensity"
    purchase_is_positive = True

    @classmethod
    def from_settings(cls, settings: ModelSettings) -> PropensityModel:
        return cls(horizon_days=settings.propensity_horizon_days, model=settings.score_model,
                   batch_labels=settings.propensity_batch_labels)
