"""The feature space: the numbers the learners see for a customer at a moment.

BASE_FEATURES (recency, frequency, spend, activity...) then `aff_{category}`, the customer's share of
interest in each category the space has met, in first-seen order (bounded, so the space cannot explode).

>>> from models.state import CustomerState
>>> space = FeatureSpace(["books", "home"])
>>> x = space.features(CustomerState("c1", affinity={"books": 3.0, "home": 1.0}), now_ts=0.0)
>>> x["aff_books"], x["aff_home"], len(x) == len(BASE_FEATURES) + 2
(0.75, 0.25, True)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from models.state import CustomerState
from schemas.events import ClickEvent, PurchaseEvent

MAX_CATEGORIES = 20
AFFINITY_PREFIX = "aff_"
# Stored features keep this many decimals: plenty for a learner, a third of the JSON of full floats.
STORED_DECIMALS = 5


def customer_features(state: CustomerState, now_ts: float, categories: Iterable[str] = ()) -> dict[str, float]:
    """Numeric features of a customer at now_ts (unscaled): BASE_FEATURES, then `aff_{category}` for each of
    `categories`."""
    interactions = max(1, state.views + state.clicks + state.carts)
    x = {
        "recency_days": min(state.recency_days(now_ts), 365.0),
        "frequency": math.log1p(state.purchases),
        "monetary": math.log1p(state.monetary),
        "avg_order": math.log1p(state.monetary / state.purchases) if state.purchases else 0.0,
        "events": math.log1p(state.events),
        "sessions": math.log1p(state.sessions),
        "events_per_session": state.events / max(1, state.sessions),
        "click_rate": state.clicks / interactions,
        "cart_rate": state.carts / interactions,
        "search_share": state.searches / max(1, state.events),
        "session_events": math.log1p(state.session_events),
    }
    share = state.affinity_share()
    for cat in categories:
        x[AFFINITY_PREFIX + cat] = share.get(cat, 0.0)
    return x


BASE_FEATURES = tuple(customer_features(CustomerState(""), 0.0))


class FeatureSpace:
    """The categories met so far, which become features in a stable order (checkpointed with the learners)."""

    def __init__(self, categories: Iterable[str] = ()) -> None:
        self.categories: list[str] = list(categories)

    def note(self, event: ClickEvent | PurchaseEvent) -> None:
        """Add the categories an event names (up to MAX_CATEGORIES in all)."""
        if isinstance(event, PurchaseEvent):
            for line in event.lines:
                self._note(line.category)
        elif event.category is not None:
            self._note(event.category)

    def _note(self, category: str) -> None:
        if category not in self.categories and len(self.categories) < MAX_CATEGORIES:
            self.categories.append(category)

    def features(self, state: CustomerState, now_ts: float) -> dict[str, float]:
        return customer_features(state, now_ts, self.categories)


StoredFeatures = tuple[tuple[float, ...], tuple[tuple[str, float], ...]]


def compact_features(x: dict[str, float]) -> StoredFeatures:
    """A feature vector as stored while it waits for its label: base values in BASE_FEATURES order and the
    non-zero affinities by category name (not by position: another worker may order categories differently)."""
    return (tuple(round(x[name], STORED_DECIMALS) for name in BASE_FEATURES),
            tuple((k[len(AFFINITY_PREFIX):], round(v, STORED_DECIMALS))
                  for k, v in x.items() if v and k.startswith(AFFINITY_PREFIX)))


def expand_features(stored: Any, categories: Iterable[str]) -> dict[str, float]:
    """Inverse of compact_features, in the feature space of `categories` (zero for the customer's others)."""
    values, affinity = stored
    shares = dict(affinity)
    x = dict(zip(BASE_FEATURES, values, strict=True))
    for category in categories:
        x[AFFINITY_PREFIX + category] = shares.get(category, 0.0)
    return x
