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
from dataclasses import dataclass
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
    values: tuple[float, ...] = ()  # by FEATURES

    @property
    def features(self) -> dict[str, float]:
        return dict(zip(FEATURES, self.values, strict=True))


# What the sources leave per item while they propose: [best relevance, its source, its subject, the sources
# proposing it (a bit each), the co-occurrence strength]. Plain lists, not objects: a decision hears ~50 proposals.
RELEVANCE, SOURCE, SUBJECT, PROPOSED_BY, TOGETHER_STRENGTH = range(5)
_BIT = tuple(1 << source for source in range(len(SOURCES)))


def collect(state: CustomerState, items: ItemCooccurrence, favourites: SegmentFavourites | None,
            outputs: Mapping[str, Any], excluded: set[str], now_ts: float,
            repeat_rate: Callable[[str], float] | None = None) -> dict[str, Candidate]:
    """Every candidate the sources propose that may be offered now, with its features. `repeat_rate(item)`: the
    share of the item's buyers who bought it again (the response learner counts it), else a constant."""
    proposed: dict[str, list[Any]] = {}
    together = candidates.TOGETHER

    def sink(item_id: str, relevance: float, source: int, subject: object) -> None:
        if item_id in excluded:
            return
        entry = proposed.get(item_id)
        if entry is None:
            entry = proposed[item_id] = [0.0, candidates.POPULAR, None, 0, 0.0]
        entry[PROPOSED_BY] |= _BIT[source]
        if source == together and relevance > entry[TOGETHER_STRENGTH]:
            entry[TOGETHER_STRENGTH] = relevance
        if relevance > entry[RELEVANCE]:
            entry[RELEVANCE], entry[SOURCE], entry[SUBJECT] = relevance, source, subject

    share = state.affinity_share()
    bought = {item_id: counted for item_id, counted in state.purchase_counts.items() if counted[1] <= now_ts}

    def staples(state: CustomerState, sink: candidates.Sink) -> None:
        # What the customer bought before, over more orders than the last few (nbo's `buy_again` reads those).
        for item_id, (times, _) in bought.items():
            sink(item_id, 0.25 + 0.15 * (times - 1), candidates.AGAIN, times)

    candidates.propose(state, items, favourites, outputs, share, sink, again=staples, popular_k=10)
    return _described(proposed, state, items, outputs, share, bought, now_ts, repeat_rate)


def _described(proposed: dict[str, list[Any]], state: CustomerState, items: ItemCooccurrence,
               outputs: Mapping[str, Any], share: dict[str, float], bought: dict[str, tuple[int, float]],
               now_ts: float, repeat_rate: Callable[[str], float] | None) -> dict[str, Candidate]:
    """The proposed items as Candidates with their FEATURES values (one pass, every lookup bound once: this is
    most of a learned decision's time)."""
    info_of = items.info.get
    weight_of = items.item_weight.get
    bought_get = bought.get
    share_get = share.get
    top = items.popular(None, k=1)
    log_top = math.log1p(weight_of(top[0], 0.0)) if top else 0.0
    propensity = float(outputs.get("propensity") or 0.5)
    churn = float(outputs.get("churn_risk") or 0.5)
    orders = max(1, state.purchases)
    placed = state.recent_orders
    gap_days = max(1.0, (placed[-1] - placed[0]) / (len(placed) - 1) / DAY) if len(placed) > 1 else 30.0
    log, log_of, exp = math.log1p, math.log, math.exp
    # How lately the customer looked at (or bought) each of their recent items: 1 the latest, then x 0.7 per step.
    seen_get = {item_id: 0.7**age for age, item_id in enumerate(reversed(state.recent_items))}.get
    together_bit, again_bit, category_bit, segment_bit, popular_bit = _BIT
    never_days = NEVER_BOUGHT_DAYS
    found: dict[str, Candidate] = {}
    for item_id, (relevance, source, subject, by, together_strength) in proposed.items():
        info = info_of(item_id)
        counted = bought_get(item_id)
        repeat = repeat_rate(item_id) if repeat_rate is not None else REPEAT_RATE
        popularity = log(weight_of(item_id, 0.0)) / log_top if log_top > 0 else 0.0
        if counted is not None:
            times, last = counted
            days = min((now_ts - last) / DAY, never_days)
            lately = exp(-days / 14.0)
            order_share = min(1.0, times / orders)
            log_times = log(times) / 3.0
            values = (
                1.0 if by & together_bit else 0.0, 1.0 if by & again_bit else 0.0,
                1.0 if by & category_bit else 0.0, 1.0 if by & segment_bit else 0.0,
                1.0 if by & popular_bit else 0.0, relevance, together_strength, seen_get(item_id, 0.0),
                log(info.price) / 5.0 if info else 0.0, share_get(info.category if info else "", 0.0),
                log_times, order_share, max(log_of(order_share), -5.0) / 5.0 + 1.0, lately, 0.0,
                1.0 if days < 7.0 else 0.0, 1.0 if 7.0 <= days < 30.0 else 0.0,
                min(days / gap_days, 4.0) / 4.0, repeat, repeat * order_share, 0.0,
                log_times * lately, popularity, 0.0, propensity, churn)
        else:  # never bought: the history features say so (bounded, as if bought NEVER_BOUGHT_DAYS ago)
            values = (
                1.0 if by & together_bit else 0.0, 1.0 if by & again_bit else 0.0,
                1.0 if by & category_bit else 0.0, 1.0 if by & segment_bit else 0.0,
                1.0 if by & popular_bit else 0.0, relevance, together_strength, seen_get(item_id, 0.0),
                log(info.price) / 5.0 if info else 0.0, share_get(info.category if info else "", 0.0),
                0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, repeat, 0.0, repeat, 0.0, popularity, popularity,
                propensity, churn)
        found[item_id] = Candidate(item_id, info.category if info else None, relevance, source, subject, values)
    return found
