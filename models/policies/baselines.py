"""Baseline policies an experiment compares against: the globally most popular item, and a random known item.

Both are held to the same guardrails as every policy (caps, exclusions). `random` draws from its own generator,
seeded per decision from the customer and the moment, so a replay decides the same.

>>> from models.learners.cooccurrence import ItemCooccurrence, ItemInfo
>>> from models.state import CustomerState
>>> items = ItemCooccurrence()
>>> for item, views in (("tea", 3), ("mug", 1)):
...     for _ in range(views):
...         items.observe_item(ItemInfo(item, "grocery", 4.0), ts=0.0)
>>> request = OfferRequest(CustomerState("c1"), now_ts=60.0, outputs={}, excluded=set())
>>> Popular(items).decide(request).item_id
'tea'
>>> Popular(items).decide(OfferRequest(CustomerState("c1"), now_ts=60.0, outputs={}, excluded={"tea"})).item_id
'mug'
>>> choice = RandomItem(items).decide(request)
>>> choice.item_id in ("tea", "mug"), choice.probability
(True, 0.5)
"""

from __future__ import annotations

from collections.abc import Mapping

from models.learners.base import Learner
from models.learners.cooccurrence import ItemCooccurrence
from models.policies import candidates
from models.policies.base import Decision, OfferPolicy, OfferRequest, register_policy, required_learner
from models.policies.draws import DecisionDraws
from models.settings import ModelSettings

POPULAR_DEPTH = 20


@register_policy
class Popular(OfferPolicy):
    """The most popular item the customer may be offered now: what a shop shows without personalisation."""

    name = "popular"
    version = "popular-1"

    def __init__(self, items: ItemCooccurrence) -> None:
        self.items = items

    @classmethod
    def from_settings(cls, settings: ModelSettings, learners: Mapping[str, Learner]) -> Popular:
        return cls(required_learner(learners, "cooccurrence", cls.name))

    def decide(self, request: OfferRequest) -> Decision | None:
        for item_id in self.items.popular(None, k=POPULAR_DEPTH):
            if item_id not in request.excluded:
                info = self.items.info.get(item_id)
                category = info.category if info else None
                return Decision(item_id, category, 1.0, candidates.reason(candidates.POPULAR, None))
        return None


@register_policy
class RandomItem(OfferPolicy):
    """A uniformly random known item (not excluded): the floor any policy must clear."""

    name = "random"
    version = "random-1"

    def __init__(self, items: ItemCooccurrence) -> None:
        self.items = items

    @classmethod
    def from_settings(cls, settings: ModelSettings, learners: Mapping[str, Learner]) -> RandomItem:
        return cls(required_learner(learners, "cooccurrence", cls.name))

    def decide(self, request: OfferRequest) -> Decision | None:
        allowed = [item for item in self.items.info if item not in request.excluded]
        if not allowed:
            return None
        rng = DecisionDraws.of(request.state.customer_id, request.now_ts)
        item_id = allowed[rng.randrange(len(allowed))]
        info = self.items.info[item_id]
        return Decision(item_id, info.category, 1.0, "picked at random (a baseline)", probability=1 / len(allowed))
