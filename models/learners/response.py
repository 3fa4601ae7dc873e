"""How customers respond to offers: P(an offer converts | the customer, the candidate), learned online from what
became of each offer (attribution: converted, or not, when its window closes) and from implicit outcomes.

- **Attributed outcomes** (`learn_outcome`): each published offer of the learned policy, when its window closes.
- **Implicit outcomes** (`remember`): a decision also hands over a few candidates it did not offer; each waits in
  the customer's state until its window has passed, then is learned as a positive if the customer bought its item
  within the window, else as a negative (at the visit that closes the window, as attribution closes offers). In a
  replayed log an offer changes nothing the customer does, so an unoffered candidate's outcome is exactly what
  offering it would have scored: the response model learns from many candidates per decision, not only the chosen.
  Live, what it learns from them is the purchase likelihood without an offer (`PERSO_LEARNED_TEACH_CANDIDATES=0`
  turns it off). With `organic` (`PERSO_LEARNED_UPLIFT` above 0) they teach a model of their own instead,
  P(bought anyway | the customer, the candidate), and the attributed outcomes alone teach the response model: the
  learned policy can then rank by what an offer adds (docs/offers.md, "Closed loop").
- **Item repeat statistics** (`repeat_rate`): per item, the share of its buyers who bought it again (groceries are
  re-bought, gadgets are not), counted from every order: a feature of the candidates.

The features describe one candidate for one customer (models/policies/candidate_features.py). The model is River's
logistic regression on standardised features with averaged weights (`AveragedLogistic`, as propensity's); scoring
reads its weights directly (a dot product over the features), since a decision
scores dozens of candidates and River's `predict_proba_one` costs several microseconds each.

>>> response = OfferResponse()
>>> response.probability({"times_bought": 2.0})  # nothing learned yet
0.5
>>> for _ in range(200):
...     response.learn_outcome({"times_bought": 2.0}, True)
...     response.learn_outcome({"times_bought": 0.0}, False)
>>> response.probability({"times_bought": 2.0}) > 0.75 > 0.25 > response.probability({"times_bought": 0.0})
True
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from models.calibration import sigmoid
from models.learners.base import EventContext, Learner, TimeContext, register_learner
from models.learners.delayed import AveragedLogistic
from models.settings import ModelSettings
from models.state import DAY, CustomerState
from schemas.events import PurchaseEvent

# Implicit examples waiting per customer (no more are taken beyond): (item, decided at, features, bought since).
MAX_WAITING = 48


def pack_values(values: Sequence[float]) -> str:
    """A waiting example's feature values as text: half-precision floats (3 significant digits, plenty for a
    gradient step), base64. One C call each way, where rounding every value in Python cost a quarter of a learned
    decision, and a third of the JSON.

    >>> unpack_values(pack_values((0.5, 0.12345, 1.0, 0.0)))
    (0.5, 0.12347412109375, 1.0, 0.0)
    """
    return base64.b64encode(struct.pack(f"<{len(values)}e", *values)).decode("ascii")


def unpack_values(packed: str | Sequence[float]) -> tuple[float, ...]:
    """`pack_values`' values back (a plain sequence, as states saved before packing hold, is returned as is)."""
    if not isinstance(packed, str):
        return tuple(packed)
    raw = base64.b64decode(packed)
    return struct.unpack(f"<{len(raw) // 2}e", raw)
# Repeat rate prior: an item with few buyers says what the average item does (pseudo-counts).
REPEAT_PRIOR_BUYERS, REPEAT_PRIOR_RATE = 5.0, 0.2


def _repeat_rate(bought: int, again: int) -> float:
    return (again + REPEAT_PRIOR_BUYERS * REPEAT_PRIOR_RATE) / (bought + REPEAT_PRIOR_BUYERS)


@register_learner
class OfferResponse(Learner):
    name = "response"
    version = "response-2"

    def __init__(self, learning_rate: float = 0.05, l2: float = 1e-4, window_s: float = 7 * DAY,
                 window: int = 50_000, organic: bool = False, max_items: int = 50_000) -> None:
        # Standardised features (one learning rate suits a flag and a log share spread over 0.2) and weights
        # averaged over the last `window` examples: plain SGD on raw values swung with each day's outcomes and,
        # on a planted truth, ranked a customer's own staples below items they never bought.
        self.model = AveragedLogistic(learning_rate=learning_rate, l2=l2, window=window)
        self.window_s = window_s
        # Of the implicit outcomes alone, when they are kept apart from the offers' (None: they teach `model`).
        self.organic = AveragedLogistic(learning_rate=learning_rate, l2=l2, window=window) if organic else None
        self._organic_effective: tuple[float, dict[str, float]] | None = None
        self.feature_names: tuple[str, ...] = ()  # of the waiting examples' values (`remember` says)
        self.outcomes = 0  # attributed outcomes of published offers
        self.converted = 0
        self.implicit = 0  # implicit outcomes of candidates not offered
        self.implicit_bought = 0
        self._effective: tuple[float, dict[str, float]] | None = None  # derived from the model (not checkpointed)
        self._rates: dict[str, float] | None = None  # derived from `buyers` (not checkpointed): `repeat_rates`
        self.buyers: dict[str, tuple[int, int]] = {}  # item -> (customers who bought it, who bought it again)
        self.max_items = max_items  # items counted in `buyers`: those with the most buyers (as co-occurrence keeps)

    @classmethod
    def from_settings(cls, settings: ModelSettings) -> OfferResponse:
        return cls(window_s=settings.attribution_window_days * DAY, organic=settings.learned_uplift > 0,
                   max_items=settings.cooc_max_items)

    # The folded weights are derived from the model: kept out of checkpoints, recomputed on first use.
    def drop_caches(self) -> None:
        self._effective = self._organic_effective = self._rates = None

    def __getstate__(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_effective", "_organic_effective", "_rates")}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.organic = None  # a checkpoint from before the organic model
        self.max_items = 50_000  # ... or before `buyers` was bounded
        self.__dict__.update(state)
        self._effective = self._organic_effective = self._rates = None

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
                buyers[line.item_id] = counted = (bought + (n == 1), again + (n == 2))
                if self._rates is not None:
                    self._rates[line.item_id] = _repeat_rate(*counted)
        if len(buyers) > self.max_items * 1.1:
            self._forget_least_bought()
        if ctx.state.learner_data.get(self.name):
            self._settle(ctx.state, ctx.ts, {line.item_id for line in event.lines})

    def _forget_least_bought(self) -> None:
        """Keep the `max_items` items with the most buyers, the newest first among equals (amortised: the count
        may grow a tenth past it first). An item forgotten says the prior's repeat rate again, as a new item does;
        without a bound the counts grew with every item ever sold."""
        newest_first = reversed(self.buyers.items())  # a stable sort keeps that order among equal counts
        kept = sorted(newest_first, key=lambda pair: pair[1][0], reverse=True)[: self.max_items]
        self.buyers = dict(kept)
        self._rates = None

    def learn_time(self, ctx: TimeContext) -> None:
        if ctx.state.learner_data.get(self.name):
            self._settle(ctx.state, ctx.ts, ())

    def next_wake(self, state: CustomerState) -> float | None:
        waiting = state.learner_data.get(self.name)
        return waiting[0][1] + self.window_s + 1.0 if waiting else None

    def learn_outcome(self, x: Mapping[str, float], converted: bool) -> None:
        """A published offer closed: whether it converted."""
        self._learn(dict(x), converted)
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
        if room <= 0:
            return  # the examples are not even read (a learned decision's are built when first read)
        waiting.extend((item_id, now_ts, pack_values(values), False)
                       for item_id, values in list(examples)[:room])
        state.learner_data[self.name] = tuple(waiting)  # replaced, never changed in place (undo copies share)

    def _settle(self, state: CustomerState, now_ts: float, bought: Iterable[str]) -> None:
        # Each example is learned once, when its window has passed, with what it became: learning the bought
        # ones at once and the others a window later skewed the model (a day of orders taught only positives).
        bought = set(bought)
        still = []
        for example in state.learner_data.get(self.name, ()):
            item_id, ts, values, converted = example
            if now_ts > ts + self.window_s:
                self._learn_implicit(values, converted)
                continue
            if not converted and item_id in bought and ts < now_ts:
                example = (item_id, ts, values, True)
            still.append(example)
        state.learner_data[self.name] = tuple(still)

    def _learn_implicit(self, packed: str | tuple[float, ...], bought: bool) -> None:
        names = self.feature_names
        values = unpack_values(packed)
        if len(values) != len(names):
            return  # written with another feature set (an older release): not learned
        x = dict(zip(names, values, strict=True))
        if self.organic is not None:
            self.organic.learn_one(x, bought)
            self._organic_effective = None
        else:
            self._learn(x, bought)
        self.implicit += 1
        self.implicit_bought += bought
        self.n_learned = self.outcomes + self.implicit

    def _learn(self, x: dict[str, float], label: bool) -> None:
        self.model.learn_one(x, label)
        self._effective = None

    # --- predicting ----------------------------------------------------------------------------
    @property
    def learned(self) -> int:
        """Outcomes learned, attributed and implicit."""
        return self.outcomes + self.implicit

    def repeat_rate(self, item_id: str) -> float:
        """The share of the item's buyers who bought it again (smoothed towards the average item's)."""
        return _repeat_rate(*self.buyers.get(item_id, (0, 0)))

    def repeat_rates(self) -> Mapping[str, float]:
        """`repeat_rate` of every item counted so far (any other item's is REPEAT_PRIOR_RATE), kept up to date as
        orders are counted: a learned decision looks up ~30 (a call each was 2% of `process`)."""
        if self._rates is None:
            self._rates = {item_id: _repeat_rate(*counted) for item_id, counted in self.buyers.items()}
        return self._rates

    def weights(self, names: Sequence[str]) -> tuple[float, list[float]]:
        """The intercept and the weights of `names` on the raw feature values, in that order (the scaler folded
        in: scoring many candidates is then one dot product each)."""
        intercept, weights = self._folded()
        return intercept, [weights.get(name, 0.0) for name in names]

    def organic_weights(self, names: Sequence[str]) -> tuple[float, list[float]] | None:
        """As `weights`, of the model of buying without an offer; None when implicit outcomes teach `model`."""
        if self.organic is None:
            return None
        if self._organic_effective is None:
            self._organic_effective = _fold(self.organic)
        intercept, weights = self._organic_effective
        return intercept, [weights.get(name, 0.0) for name in names]

    def probability(self, x: Mapping[str, float]) -> float:
        intercept, weights = self._folded()
        return sigmoid(intercept + sum(weights.get(name, 0.0) * value for name, value in x.items()))

    def _folded(self) -> tuple[float, dict[str, float]]:
        if self._effective is None:
            self._effective = _fold(self.model)
        return self._effective

    def metrics(self) -> dict[str, Any]:
        return {"outcomes_learned": float(self.outcomes),
                "converted_share": self.converted / self.outcomes if self.outcomes else 0.0,
                "implicit_learned": float(self.implicit),
                "implicit_bought_share": self.implicit_bought / self.implicit if self.implicit else 0.0}


def _fold(model: AveragedLogistic) -> tuple[float, dict[str, float]]:
    # w . (x - mean) / sd + b  =  (w / sd) . x + (b - sum(w mean / sd)); recomputed after learning only.
    means, variances = model.scaler.means, model.scaler.vars
    weights: dict[str, float] = {}
    intercept = model.intercept
    for name, w in model.weights.items():  # the averaged weights (a dict); read, never changed here
        sd = math.sqrt(variances.get(name, 0.0))
        if sd > 0:
            weights[name] = w / sd
            intercept -= w * means.get(name, 0.0) / sd
    return intercept, weights
