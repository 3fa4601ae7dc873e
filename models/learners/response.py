"""How customers respond to offers: P(an offer converts | the customer, the candidate), learned online from what
became of each offer (attribution: converted, or not, when its window closes) and from implicit outcomes.

- **Attributed outcomes** (`learn_outcome`): each published offer of the learned policy, when its window closes.
- **Implicit outcomes** (`remember`): a decision also hands over a few candidates it did not offer; each waits in
  the customer's state until the customer buys its item within the window (a positive, learned at that purchase)
  or the window passes (a negative, learned at the visit that closes it). In a replayed log an offer changes
  nothing the customer does, so an unoffered candidate's outcome is exactly what offering it would have scored:
  the response model learns from many candidates per decision, not only the one chosen. Live, what it learns
  from them is the purchase likelihood without an offer (`PERSO_LEARNED_TEACH_CANDIDATES=0` turns it off).
- **Item repeat statistics** (`repeat_rate`): per item, the share of its buyers who bought it again (groceries are
  re-bought, gadgets are not), counted from every order: a feature of the candidates.

The features describe one candidate for one customer (models/policies/candidate_features.py). The model is River's
logistic regression; scoring reads its weights directly (a dot product over the features), since a decision
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
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from river import linear_model, optim

from models.learners.base import EventContext, Learner, TimeContext, register_learner
from models.settings import ModelSettings
from models.state import DAY, CustomerState
from schemas.events import PurchaseEvent

# Implicit examples waiting per customer (no more are taken beyond): (item, decided at, features).
MAX_WAITING = 48
# Repeat rate prior: an item with few buyers says what the average item does (pseudo-counts).
REPEAT_PRIOR_BUYERS, REPEAT_PRIOR_RATE = 5.0, 0.2


@register_learner
class OfferResponse(Learner):
    name = "response"
    version = "response-2"

    def __init__(self, learning_rate: float = 0.2, l2: float = 1e-4, window_s: float = 7 * DAY) -> None:
        self.model = linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate), l2=l2,
                                                     intercept_lr=learning_rate)
        self.window_s = window_s
        self.feature_names: tuple[str, ...] = ()  # of the waiting examples' values (`remember` says)
        self.outcomes = 0  # attributed outcomes of published offers
        self.converted = 0
        self.implicit = 0  # implicit outcomes of candidates not offered
        self.implicit_bought = 0
        self.buyers: dict[str, tuple[int, int]] = {}  # item -> (customers who bought it, who bought it again)

    @classmethod
    def from_settings(cls, settings: ModelSettings) -> OfferResponse:
        return cls(window_s=settings.attribution_window_days * DAY)

    # --- learning ------------------------------------------------------------------------------
    def learn_one(self, ctx: EventContext) -> None:
        """On an order: count each item's buyers and repeat buyers, and learn the waiting examples it settles."""
        event = ctx.event
        if not isinstance(event, PurchaseEvent):
            return
        counts = ctx.state.purchase_counts
        buyers = self.buyers
        for line in event.lines:
            n = counts.get(line.item_id, (1, 0.0))[0]
            if n <= 2:  # after this order: 1, a new buyer; 2, a buyer's first repeat
                bought, again = buyers.get(line.item_id, (0, 0))
                buyers[line.item_id] = (bought + (n == 1), again + (n == 2))
        if ctx.state.learner_data.get(self.name):
            self._settle(ctx.state, ctx.ts, {line.item_id for line in event.lines})

    def learn_time(self, ctx: TimeContext) -> None:
        if ctx.state.learner_data.get(self.name):
            self._settle(ctx.state, ctx.ts, ())

    def next_wake(self, state: CustomerState) -> float | None:
        waiting = state.learner_data.get(self.name)
        return waiting[0][1] + self.window_s + 1.0 if waiting else None

    def learn_outcome(self, x: Mapping[str, float], converted: bool) -> None:
        """A published offer closed: whether it converted."""
        self.model.learn_one(dict(x), converted)
        self.outcomes += 1
        self.converted += converted
        self.n_learned = self.outcomes + self.implicit

    def remember(self, state: CustomerState, now_ts: float, examples: Iterable[tuple[str, tuple[float, ...]]],
                 names: Sequence[str]) -> None:
        """Candidates decided on but not offered at `now_ts`, each (item, its features' values, by `names`):
        learned once their outcome is known (the item bought within the window, or the window passed)."""
        if names is not self.feature_names:
            self.feature_names = tuple(names)
        waiting = list(state.learner_data.get(self.name, ()))
        room = MAX_WAITING - len(waiting)
        # A full list takes no more (rather than dropping the oldest unsettled: those are the negatives, and
        # dropping them would teach a rate of buying that is too high for the most active customers).
        waiting.extend((item_id, now_ts, values) for item_id, values in list(examples)[:max(room, 0)])
        state.learner_data[self.name] = tuple(waiting)  # replaced, never changed in place (undo copies share)

    def _settle(self, state: CustomerState, now_ts: float, bought: Iterable[str]) -> None:
        bought = set(bought)
        still = []
        for example in state.learner_data.get(self.name, ()):
            item_id, ts, values = example
            if item_id in bought and ts < now_ts <= ts + self.window_s:
                self._learn_implicit(values, True)
            elif now_ts > ts + self.window_s:
                self._learn_implicit(values, False)
            else:
                still.append(example)
        state.learner_data[self.name] = tuple(still)

    def _learn_implicit(self, values: tuple[float, ...], bought: bool) -> None:
        names = self.feature_names
        if len(values) != len(names):
            return  # written with another feature set (an older release): not learned
        self.model.learn_one(dict(zip(names, values, strict=True)), bought)
        self.implicit += 1
        self.implicit_bought += bought
        self.n_learned = self.outcomes + self.implicit

    # --- predicting ----------------------------------------------------------------------------
    @property
    def learned(self) -> int:
        """Outcomes learned, attributed and implicit."""
        return self.outcomes + self.implicit

    def repeat_rate(self, item_id: str) -> float:
        """The share of the item's buyers who bought it again (smoothed towards the average item's)."""
        bought, again = self.buyers.get(item_id, (0, 0))
        return (again + REPEAT_PRIOR_BUYERS * REPEAT_PRIOR_RATE) / (bought + REPEAT_PRIOR_BUYERS)

    def weights(self, names: Sequence[str]) -> tuple[float, list[float]]:
        """The intercept and the weights of `names`, in that order (scoring many candidates reuses them)."""
        weights = self.model._weights  # River's weights (a dict); read, never changed here
        return self.model.intercept, [weights.get(name, 0.0) for name in names]

    def probability(self, x: Mapping[str, float]) -> float:
        weights = self.model._weights
        z = self.model.intercept + sum(weights.get(name, 0.0) * value for name, value in x.items())
        return sigmoid(z)

    def metrics(self) -> dict[str, Any]:
        return {"outcomes_learned": float(self.outcomes),
                "converted_share": self.converted / self.outcomes if self.outcomes else 0.0,
                "implicit_learned": float(self.implicit),
                "implicit_bought_share": self.implicit_bought / self.implicit if self.implicit else 0.0}


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
