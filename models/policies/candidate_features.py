"""Each offer candidate described by what a learned policy needs to rank it: where it comes from, how strongly,
the customer's history with it, its price and popularity, and what the learners say of the customer.

Candidates come from the same sources as `nbo` (models/policies/candidates.py); an item proposed by several
sources keeps each source's strength.

>>> from models.learners.cooccurrence import ItemCooccurrence, ItemInfo
>>> from models.state import CustomerState
>>> items = ItemCooccurrence()
>>> for item in ("tea", "mug"):
...     items.observe_item(ItemInfo(item, "home", 4.0), ts=0.0)
>>> items.learn_together(["tea", "mug"], ts=0.0)
>>> state = CustomerState("c1", recent_items=["tea"], purchases=4, purchase_counts={"tea": (2, 86_400.0)})
>>> found = collect(state, items, None, {"propensity": 0.4}, excluded=set(), now_ts=2 * 86_400.0)
>>> sorted(found)
['mug', 'tea']
>>> x = found["tea"].features
>>> x["again"], x["order_share"], x["within_week"], x["never_bought"], x["together"] > 0  # in 2 of 4 orders
(1.0, 0.5, 1.0, 0.0, False)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from models.learners.cooccurrence import ItemCooccurrence
from models.learners.segments import SegmentFavourites
from models.policies import candidates
from models.state import DAY, CustomerState

SOURCES = ("together", "again", "category", "segment", "popular")
# Every value is bounded (about 0..1) so one learning rate suits them all. The customer x item history is said
# several ways (log count, share of orders and its log, recency buckets, how due it is) and crossed with the item's
# repeat rate: a linear model cannot multiply features itself, and "bought often, lately, an item people re-buy" is
# the signal. The log share: P(in the next order) is about the share, so its log is what a logit adds up.
FEATURES = (*SOURCES, "relevance", "together_strength", "seen_lately", "log_price", "affinity", "log_times",
            "order_share", "log_share", "bought_lately", "never_bought", "within_week", "within_month", "due",
            "repeat_rate", "repeat_x_share", "repeat_x_never", "times_x_lately", "popularity", "popularity_x_never",
            "propensity", "churn_risk")
REPEAT_RATE = 0.2  # an item's repeat rate when nobody counts it
NEVER_BOUGHT_DAYS = 60.0  # what "days since bought" says of an item never bought (the features stay bounded)


@dataclass(slots=True)
class Candidate:
    item_id: str
    category: str | None
    relevance: float = 0.0  # the best source's relevance, as nbo scores it
    source: int = candidates.POPULAR  # that source, and what it names (for the reason in words)
    subject: object = None
    strength: dict[str, float] = field(default_factory=dict)  # per source: its relevance
    values: tuple[float, ...] = ()  # by FEATURES

    @property
    def features(self) -> dict[str, float]:
        return dict(zip(FEATURES, self.values, strict=True))


def collect(state: CustomerState, items: ItemCooccurrence, favourites: SegmentFavourites | None,
            outputs: Mapping[str, Any], excluded: set[str], now_ts: float,
            repeat_rate: Callable[[str], float] | None = None) -> dict[str, Candidate]:
    """Every candidate the sources propose that may be offered now, with its features. `repeat_rate(item)`: the
    share of the item's buyers who bought it again (the response learner counts it), else a constant."""
    found: dict[str, Candidate] = {}
    info_of = items.info.get

    def sink(item_id: str, relevance: float, source: int, subject: object) -> None:
        if item_id in excluded:
            return
        candidate = found.get(item_id)
        if candidate is None:
            info = info_of(item_id)
            candidate = found[item_id] = Candidate(item_id, info.category if info else None)
        name = SOURCES[source]
        candidate.strength[name] = max(relevance, candidate.strength.get(name, 0.0))
        if relevance > candidate.relevance or not candidate.strength:
            candidate.relevance, candidate.source, candidate.subject = relevance, source, subject

    share = state.affinity_share()
    bought = {item_id: counted for item_id, counted in state.purchase_counts.items() if counted[1] <= now_ts}

    def staples(state: CustomerState, sink: candidates.Sink) -> None:
        # What the customer bought before, over more orders than the last few (nbo's `buy_again` reads those).
        for item_id, (times, _) in bought.items():
            sink(item_id, 0.25 + 0.15 * (times - 1), candidates.AGAIN, times)

    candidates.propose(state, items, favourites, outputs, share, sink, again=staples, popular_k=10)

    weight_of = items.item_weight.get
    top = items.popular(None, k=1)
    log_top = math.log1p(weight_of(top[0], 0.0)) if top else 0.0
    propensity = float(outputs.get("propensity") or 0.5)
    churn = float(outputs.get("churn_risk") or 0.5)
    orders = max(1, state.purchases)
    placed = state.recent_orders
    gap_days = max(1.0, (placed[-1] - placed[0]) / (len(placed) - 1) / DAY) if len(placed) > 1 else 30.0
    log, log_of, exp = math.log1p, math.log, math.exp
    # How lately the customer looked at (or bought) each of their recent items: 1 the latest, then x 0.7 per step.
    seen = {item_id: 0.7**age for age, item_id in enumerate(reversed(state.recent_items))}
    for item_id, candidate in found.items():
        info = info_of(item_id)
        strength = candidate.strength
        times, last = bought.get(item_id, (0, 0.0))
        days = min((now_ts - last) / DAY, NEVER_BOUGHT_DAYS) if times else NEVER_BOUGHT_DAYS
        never = 0.0 if times else 1.0
        lately = exp(-days / 14.0) if times else 0.0
        order_share = min(1.0, times / orders)
        repeat = repeat_rate(item_id) if repeat_rate is not None else REPEAT_RATE
        log_times = log(times) / 3.0
        popularity = log(weight_of(item_id, 0.0)) / log_top if log_top > 0 else 0.0
        candidate.values = (
            1.0 if "together" in strength else 0.0, 1.0 if "again" in strength else 0.0,
            1.0 if "category" in strength else 0.0, 1.0 if "segment" in strength else 0.0,
            1.0 if "popular" in strength else 0.0, candidate.relevance, strength.get("together", 0.0),
            seen.get(item_id, 0.0),
            log(info.price) / 5.0 if info else 0.0, share.get(candidate.category or "", 0.0),
            log_times, order_share, max(log_of(order_share), -5.0) / 5.0 + 1.0 if times else 0.0, lately, never,
            1.0 if times and days < 7.0 else 0.0, 1.0 if times and 7.0 <= days < 30.0 else 0.0,
            min(days / gap_days, 4.0) / 4.0 if times else 0.0, repeat, repeat * order_share, repeat * never,
            log_times * lately, popularity, popularity * never, propensity, churn)
    return found
