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
>>> state = CustomerState("c1", recent_items=["tea"], purchase_counts={"tea": (2, 86_400.0)})
>>> found = collect(state, items, None, {"propensity": 0.4}, excluded=set(), now_ts=2 * 86_400.0)
>>> sorted(found)
['mug', 'tea']
>>> x = found["tea"].features
>>> x["again"], x["times_bought"], x["days_since_bought"], x["together"] > 0
(1.0, 2.0, 1.0, False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.learners.cooccurrence import ItemCooccurrence
from models.learners.segments import SegmentFavourites
from models.policies import candidates
from models.state import DAY, CustomerState

SOURCES = ("together", "again", "category", "segment", "popular")
FEATURES = (*SOURCES, "relevance", "log_price", "affinity", "times_bought", "days_since_bought", "bought_lately",
            "popularity", "propensity", "churn_risk")
NEVER_BOUGHT_DAYS = 60.0  # what "days since bought" says of an item never bought (the features stay bounded)


@dataclass(slots=True)
class Candidate:
    item_id: str
    category: str | None
    relevance: float = 0.0  # the best source's relevance, as nbo scores it
    source: int = candidates.POPULAR  # that source, and what it names (for the reason in words)
    subject: object = None
    strength: dict[str, float] = field(default_factory=dict)  # per source: its relevance
    features: dict[str, float] = field(default_factory=dict)


def collect(state: CustomerState, items: ItemCooccurrence, favourites: SegmentFavourites | None,
            outputs: Mapping[str, Any], excluded: set[str], now_ts: float) -> dict[str, Candidate]:
    """Every candidate the sources propose that may be offered now, with its features."""
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

    ranked = items.popular(None, k=100)
    rank = {item_id: n for n, item_id in enumerate(ranked)}
    propensity = float(outputs.get("propensity") or 0.5)
    churn = float(outputs.get("churn_risk") or 0.5)
    for item_id, candidate in found.items():
        info = info_of(item_id)
        times, last = bought.get(item_id, (0, 0.0))
        days = (now_ts - last) / DAY if times else NEVER_BOUGHT_DAYS
        x = {name: 1.0 if name in candidate.strength else 0.0 for name in SOURCES}
        x.update(relevance=candidate.relevance, log_price=math.log1p(info.price) if info else 0.0,
                 affinity=share.get(candidate.category or "", 0.0), times_bought=float(times),
                 days_since_bought=min(days, NEVER_BOUGHT_DAYS), bought_lately=math.exp(-min(days, 60.0) / 14.0),
                 popularity=1.0 / (1.0 + rank[item_id]) if item_id in rank else 0.0,
                 propensity=propensity, churn_risk=churn)
        candidate.features = x
    return found
