"""Why a customer's score is what it is, in words a marketer reads: the features a model leans on for this
customer (a tree's path, a linear model's largest contributions), each said as the customer's own value.

>>> from models.features import behaviour_features
>>> from models.state import DAY, CustomerState
>>> state = CustomerState("c1", first_event_ts=0.0, last_event_ts=30 * DAY, first_purchase_ts=0.0,
...                       last_purchase_ts=30 * DAY, purchases=3, monetary=120.0, events=3,
...                       recent_orders=[0.0, 15 * DAY, 30 * DAY])
>>> in_words(["log_orders", "days_since_purchase", "log_days_since_purchase", "log_spend"],
...          behaviour_features(state, now_ts=42 * DAY))
'3 orders, the last 12 days ago, 120 spent'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

# feature -> (what it is about, how to say the customer's value); features about the same thing say it once.
_SAY: dict[str, tuple[str, Callable[[dict[str, float]], str]]] = {}


def _say(concept: str, *features: str) -> Callable[[Callable[[dict[str, float]], str]], None]:
    def register(say: Callable[[dict[str, float]], str]) -> None:
        for feature in features:
            _SAY[feature] = (concept, say)
    return register


def _n(value: float, unit: str) -> str:
    count = round(value)
    return f"{count} {unit}" + ("" if count == 1 else "s")


def _days(value: float) -> str:
    return "today" if value < 0.5 else "1 day ago" if value < 1.5 else f"{value:.0f} days ago"


_say("orders", "log_orders", "one_order", "never_bought")(
    lambda x: "never bought" if x.get("never_bought") else _n(math.expm1(x["log_orders"]), "order"))
_say("last order", "days_since_purchase", "log_days_since_purchase")(
    lambda x: f"the last {_days(x['days_since_purchase'])}" if not x.get("never_bought") else "no order yet")
# Seen last when they last bought, or as many events as orders: the order's phrase says it already ("").
_say("last visit", "days_since_event", "log_days_since_event")(
    lambda x: "" if abs(x["days_since_event"] - x["days_since_purchase"]) < 0.5 and not x.get("never_bought")
    else f"last seen {_days(x['days_since_event'])}")
_say("rhythm", "order_interval_days", "log_order_interval")(
    lambda x: f"an order every {x['order_interval_days']:.0f} days" if x["order_interval_days"] else "one order only")
_say("overdue", "overdue")(lambda x: f"{x['overdue']:.1f}x their usual gap since the last order")
_say("recent orders", "orders_30d")(lambda x: f"{_n(x['orders_30d'], 'order')} in 30 days")
_say("spend", "log_spend")(lambda x: f"{math.expm1(x['log_spend']):.0f} spent")
_say("basket", "log_avg_order")(lambda x: f"{math.expm1(x['log_avg_order']):.0f} per order")
_say("tenure", "log_tenure")(lambda x: f"known for {math.expm1(x['log_tenure']):.0f} days")
_say("pace", "log_orders_per_month")(lambda x: f"{math.expm1(x['log_orders_per_month']):.1f} orders a month")
_say("activity", "log_events", "log_activity", "session_events")(
    lambda x: "" if abs(x["log_events"] - x["log_orders"]) < 1e-9 else _n(math.expm1(x["log_events"]), "event"))
_say("carts", "cart_rate")(lambda x: f"{x['cart_rate']:.0%} of interactions add to cart")
_say("clicks", "click_rate")(lambda x: f"{x['click_rate']:.0%} of interactions are clicks")


def in_words(features: Iterable[str], x: dict[str, float], limit: int = 3) -> str:
    """The customer's values of `features` (most important first), one phrase per thing they are about.

    >>> in_words(["log_days_since_event", "log_events", "cart_rate"], {"days_since_event": 3.0,
    ...          "days_since_purchase": 40.0, "log_events": 2.4, "log_orders": 0.7, "cart_rate": 0.25})
    'last seen 3 days ago, 10 events, 25% of interactions add to cart'
    """
    said: dict[str, str] = {}
    for feature in features:
        if feature.startswith("last_") and feature[5:] in ("view", "click", "add_to_cart", "search", "purchase"):
            concept, phrase = "last event", f"last did: {feature[5:].replace('_', ' ')}"
            if not x.get(feature):
                continue
        elif feature in _SAY:
            concept, say = _SAY[feature]
            phrase = say(x)
        else:
            continue
        if phrase:
            said.setdefault(concept, phrase)
        if len(said) == limit:
            break
    return ", ".join(said.values()) or "nothing stands out yet"
