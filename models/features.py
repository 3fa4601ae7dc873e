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

from models.state import DAY, CustomerState
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

LAST_EVENT_TYPES = ("view", "click", "add_to_cart", "search", "purchase")
RECENT_ORDERS_DAYS = 30.0
ACTIVITY_HALF_LIFE_DAYS = 14.0


def behaviour_features(state: CustomerState, now_ts: float) -> dict[str, float]:
    """How a customer has behaved, as of `now_ts` (any moment, not only an event's): what models of
    "will they buy / are they slipping away" learn from. Times are in days, counts and money on log scales.

    At an event the state already holds that event, so `days_since_event` is 0 there; between events (a
    timer's visit) it grows, which is how the learners see silence.

    >>> from models.state import DAY
    >>> state = CustomerState("c1", first_event_ts=0.0, last_event_ts=10 * DAY, last_event_type="purchase",
    ...                       first_purchase_ts=0.0, last_purchase_ts=10 * DAY, purchases=3, monetary=90.0,
    ...                       recent_orders=[0.0, 5 * DAY, 10 * DAY], events=3)
    >>> x = behaviour_features(state, now_ts=16 * DAY)
    >>> x["days_since_purchase"], x["order_interval_days"], x["overdue"], x["orders_30d"], x["last_purchase"]
    (6.0, 5.0, 1.2, 3.0, 1.0)
    """
    day = DAY
    tenure = max(0.0, now_ts - state.first_event_ts) / day if state.events else 0.0
    since_event = max(0.0, now_ts - state.last_event_ts) / day if state.events else 0.0
    orders = state.purchases
    if orders and state.last_purchase_ts is not None:
        since_purchase = max(0.0, now_ts - state.last_purchase_ts) / day
    else:
        since_purchase = tenure
    interval = 0.0
    if orders >= 2 and state.first_purchase_ts is not None and state.last_purchase_ts is not None:
        interval = (state.last_purchase_ts - state.first_purchase_ts) / day / (orders - 1)
    activity = sum(state.affinity.values())
    if activity and now_ts > state.affinity_ts:
        activity *= 0.5 ** ((now_ts - state.affinity_ts) / (ACTIVITY_HALF_LIFE_DAYS * day))
    interactions = max(1, state.views + state.clicks + state.carts)
    x = {
        "days_since_event": since_event,
        "log_days_since_event": math.log1p(since_event),
        "days_since_purchase": since_purchase,
        "log_days_since_purchase": math.log1p(since_purchase),
        "never_bought": float(orders == 0),
        "one_order": float(orders == 1),
        "log_tenure": math.log1p(tenure),
        "log_orders": math.log1p(orders),
        "log_orders_per_month": math.log1p(30.0 * orders / max(tenure, 1.0)),
        "log_spend": math.log1p(state.monetary),
        "log_avg_order": math.log1p(state.monetary / orders) if orders else 0.0,
        "order_interval_days": interval,
        "log_order_interval": math.log1p(interval),
        # How far past their usual interval: above 1 they are late for their next order.
        "overdue": min(since_purchase / interval, 10.0) if interval > 0 else 0.0,
        "orders_30d": float(sum(1 for t in state.recent_orders if now_ts - t <= RECENT_ORDERS_DAYS * day)),
        "log_events": math.log1p(state.events),
        "log_activity": math.log1p(activity),
        "cart_rate": state.carts / interactions,
        "click_rate": state.clicks / interactions,
        "session_events": math.log1p(state.session_events) if since_event < 1 / 48 else 0.0,
    }
    for kind in LAST_EVENT_TYPES:
        x[f"last_{kind}"] = float(state.last_event_type == kind)
    return x


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


BEHAVIOUR_FEATURES = tuple(behaviour_features(CustomerState(""), 0.0))
