"""Next-best-offer: one item per customer from co-occurrence, purchase history, favourites and popularity.

>>> from models.learners.cooccurrence import ItemCooccurrence, ItemInfo
>>> from models.state import CustomerState
>>> items = ItemCooccurrence()
>>> for item in ("phone", "case", "charger"):
...     items.observe_item(ItemInfo(item, "electronics", 50.0), ts=0.0)
>>> items.learn_together(["phone", "case"], ts=0.0)
>>> state = CustomerState("c1", recent_items=["phone"], affinity={"electronics": 1.0})
>>> request = OfferRequest(state, now_ts=60.0, outputs={"propensity": 0.5}, excluded={"phone"})
>>> NextBestOffer(items).decide(request)
Decision(item_id='case', category='electronics', score=3.53..., reason='often bought or viewed together with phone',
         probability=1.0, features=None, examples=())
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from models.learners.base import Learner
from models.learners.cooccurrence import ItemCooccurrence
from models.learners.segments import SegmentFavourites
from models.policies import candidates
from models.policies.base import Decision, OfferPolicy, OfferRequest, register_policy, required_learner
from models.settings import ModelSettings


@register_policy
class NextBestOffer(OfferPolicy):
    """Score = propensity x value x relevance, over candidates from every source in models/policies/candidates.

    - together: neighbours of the customer's recent items (co-occurrence), most recent counted most;
    - buy again: what the customer bought before, more so if repeatedly;
    - favourites: popular items in the customer's top categories, and what their segment buys;
    - popular: globally popular items, the cold-start fallback.
    Value is log(1 + price); relevance is the source's plus half the customer's interest in the category.
    """

    name = "nbo"
    version = "nbo-2"

    def __init__(self, items: ItemCooccurrence, favourites: SegmentFavourites | None = None) -> None:
        self.items = items
        self.favourites = favourites

    @classmethod
    def from_settings(cls, settings: ModelSettings, learners: Mapping[str, Learner]) -> NextBestOffer:
        return cls(required_learner(learners, "cooccurrence", cls.name), candidates.favourites_of(learners))

    def decide(self, request: OfferRequest) -> Decision | None:
        state, outputs, excluded = request.state, request.outputs, request.excluded
        propensity = outputs.get("propensity")
        weight = 1.0 if propensity is None else propensity
        share = state.affinity_share()
        affinity = share.get
        info_of = self.items.info.get
        best: list[Any] = [None, 0.0, None, 0, None]  # item, score, category, source, subject

        # Scored as they come rather than collected first: an item offered by two sources keeps its best
        # score either way (the score grows with relevance), and the hot loop does half the work.
        def offer(item_id: str, relevance: float, source: int, subject: object) -> None:
            if item_id in excluded:
                return
            info = info_of(item_id)
            if info is None:
                score, category = 0.0, None
            else:
                category = info.category
                score = weight * math.log1p(info.price) * (relevance + 0.5 * affinity(category, 0.0))
            if best[0] is None or score > best[1]:
                best[:] = item_id, score, category, source, subject

        candidates.propose(state, self.items, self.favourites, outputs, share, offer)

        item_id, score, category, source, subject = best
        if item_id is None:
            return None
        return Decision(item_id, category, score, candidates.reason(source, subject))
