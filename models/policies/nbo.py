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
from models.policies.base import (
    Decision,
    OfferPolicy,
    OfferRequest,
    epsilon_greedy_shares,
    register_policy,
    required_learner,
)
from models.policies.draws import DecisionDraws
from models.settings import ModelSettings


@register_policy
class NextBestOffer(OfferPolicy):
    """Score = propensity x value x relevance, over candidates from every source in models/policies/candidates.

    - together: neighbours of the customer's recent items (co-occurrence), most recent counted most;
    - buy again: what the customer bought before, more so if repeatedly;
    - favourites: popular items in the customer's top categories, and what their segment buys;
    - popular: globally popular items, the cold-start fallback.
    Value is log(1 + price); relevance is the source's plus half the customer's interest in the category.

    Exploration (`PERSO_NBO_EPSILON`, 0 by default: deterministic): with that probability the item is drawn
    uniformly from its `PERSO_NBO_EXPLORE_TOP` best candidates (0: from all), and the decision logs the
    probability with which its item was chosen, so another policy can be evaluated off-policy from nbo's offers
    (`perso simulate --off-policy`, docs/offers.md). The draw is seeded by the customer and the moment.
    """

    name = "nbo"
    version = "nbo-2"

    def __init__(self, items: ItemCooccurrence, favourites: SegmentFavourites | None = None, epsilon: float = 0.0,
                 explore_top: int = 0) -> None:
        self.items = items
        self.favourites = favourites
        self.epsilon = epsilon
        self.explore_top = explore_top

    @classmethod
    def from_settings(cls, settings: ModelSettings, learners: Mapping[str, Learner]) -> NextBestOffer:
        return cls(required_learner(learners, "cooccurrence", cls.name), candidates.favourites_of(learners),
                   epsilon=settings.nbo_epsilon, explore_top=settings.nbo_explore_top)

    def decide(self, request: OfferRequest) -> Decision | None:
        if self.epsilon > 0:
            return self._explore(request)
        item_id, score, category, source, subject = self._scan(request, None)
        if item_id is None:
            return None
        return Decision(item_id, category, score, candidates.reason(source, subject))

    def probabilities(self, request: OfferRequest) -> dict[str, float]:
        if self.epsilon <= 0:
            return super().probabilities(request)
        found = self._scored(request)
        if not found:
            return {}
        ranked, pool = self._ranked(found)
        return epsilon_greedy_shares(pool, ranked[0], self.epsilon) if len(pool) > 1 else {ranked[0]: 1.0}

    def _scan(self, request: OfferRequest, found: dict[str, tuple[float, str | None, int, object]] | None
              ) -> list[Any]:
        """Score every candidate the sources propose: the best as [item, score, category, source, subject] (item
        None: no candidate), and, when `found` is given, every candidate's best score into it."""
        state, outputs, excluded = request.state, request.outputs, request.excluded
        propensity = outputs.get("propensity")
        weight = 1.0 if propensity is None else propensity
        share = state.affinity_share()
        affinity = share.get
        info_of = self.items.info.get
        best: list[Any] = [None, 0.0, None, 0, None]  # item, score, category, source, subject

        # Scored as they come rather than collected first: an item offered by two sources keeps its best
        # score either way (the score grows with relevance), and the greedy hot loop does half the work.
        def offer(item_id: str, relevance: float, source: int, subject: object) -> None:
            if item_id in excluded:
                return
            info = info_of(item_id)
            if info is None:
                score, category = 0.0, None
            else:
                category = info.category
                score = weight * math.log1p(info.price) * (relevance + 0.5 * affinity(category, 0.0))
            if found is not None:
                kept = found.get(item_id)
                if kept is None or score > kept[0]:
                    found[item_id] = (score, category, source, subject)
            elif best[0] is None or score > best[1]:
                best[:] = item_id, score, category, source, subject

        candidates.propose(state, self.items, self.favourites, outputs, share, offer)
        return best

    def _scored(self, request: OfferRequest) -> dict[str, tuple[float, str | None, int, object]]:
        """Every candidate's best score: item -> (score, category, source, subject)."""
        found: dict[str, tuple[float, str | None, int, object]] = {}
        self._scan(request, found)
        return found

    def _ranked(self, found: dict[str, tuple[float, str | None, int, object]]) -> tuple[list[str], list[str]]:
        """The candidates best first, and the ones explored among."""
        # Ties keep the order the sources proposed them in (as the greedy scan does: the first best wins).
        ranked = sorted(found, key=lambda item: -found[item][0])
        return ranked, ranked[:self.explore_top] if self.explore_top > 0 else ranked

    def _explore(self, request: OfferRequest) -> Decision | None:
        """Epsilon-greedy: the best candidate, or with probability epsilon one drawn from the top (or all)."""
        found = self._scored(request)
        if not found:
            return None
        ranked, pool = self._ranked(found)
        chosen, share = ranked[0], 1.0
        if len(pool) > 1:
            rng = DecisionDraws.of(request.state.customer_id, request.now_ts)
            if rng.random() < self.epsilon:
                chosen = pool[rng.randrange(len(pool))]
            share = epsilon_greedy_shares(pool, ranked[0], self.epsilon)[chosen]
        score, category, source, subject = found[chosen]
        return Decision(chosen, category, score, candidates.reason(source, subject), probability=share)
