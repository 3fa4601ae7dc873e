"""How customers respond to offers: P(an offer converts | the customer, the candidate), learned online from what
became of each offer (attribution: converted, or not, when its window closes).

The features describe one candidate for one customer (models/policies/candidate_features.py). The model is River's
logistic regression; scoring reads its weights directly (a dot product over ~16 features), since a decision
scores dozens of candidates and River's `predict_proba_one` costs several microseconds each.

>>> response = OfferResponse()
>>> response.probability({"times_bought": 2.0})  # nothing learned yet
0.5
>>> for _ in range(200):
...     response.learn_outcome({"times_bought": 2.0}, True)
...     response.learn_outcome({"times_bought": 0.0}, False)
>>> response.probability({"times_bought": 2.0}) > 0.8 > 0.2 > response.probability({"times_bought": 0.0})
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from river import linear_model, optim

from models.learners.base import EventContext, Learner, register_learner
from models.settings import ModelSettings


@register_learner
class OfferResponse(Learner):
    name = "response"
    version = "response-1"

    def __init__(self, learning_rate: float = 0.05, l2: float = 1e-4) -> None:
        self.model = linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate), l2=l2,
                                                     intercept_lr=learning_rate)
        self.outcomes = 0
        self.converted = 0

    @classmethod
    def from_settings(cls, settings: ModelSettings) -> OfferResponse:
        return cls()

    def learn_one(self, ctx: EventContext) -> None:
        """Nothing per event: it learns when an offer's outcome is known (`learn_outcome`)."""

    def learn_outcome(self, x: Mapping[str, float], converted: bool) -> None:
        self.model.learn_one(dict(x), converted)
        self.outcomes += 1
        self.converted += converted
        self.n_learned = self.outcomes

    def probability(self, x: Mapping[str, float]) -> float:
        weights = self.model._weights  # River's weights (a dict); read, never changed here
        z = self.model.intercept + sum(weights.get(name, 0.0) * value for name, value in x.items())
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def metrics(self) -> dict[str, float]:
        return {"outcomes_learned": float(self.outcomes),
                "converted_share": self.converted / self.outcomes if self.outcomes else 0.0}
