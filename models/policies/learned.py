"""The learned policy: every candidate scored by the offer-response model (P(convert | customer, candidate),
models/learners/response.py), the best one offered, with exploration so the model keeps learning.

- Exploration is epsilon-greedy (`PERSO_LEARNED_EPSILON`): with that probability one of the top
  `PERSO_LEARNED_EXPLORE_TOP` candidates is drawn at random. Every decision says with which probability its item
  was chosen (`Decision.probability`), so logged offers can be evaluated off-policy. The draw is seeded by the
  customer and the moment: a replay decides the same.
- Until the model has learned `PERSO_LEARNED_WARMUP` outcomes it ranks by the sources' relevance, as `nbo` does.
- Each decision carries its candidate's features; when the offer's window closes the Personalizer teaches the
  response model whether it converted.

>>> from models.learners.cooccurrence import ItemCooccurrence, ItemInfo
>>> from models.learners.response import OfferResponse
>>> from models.state import CustomerState
>>> items, response = ItemCooccurrence(), OfferResponse()
>>> for item in ("tea", "mug", "pot"):
...     items.observe_item(ItemInfo(item, "home", 4.0), ts=0.0)
>>> state = CustomerState("c1", purchase_counts={"tea": (3, 0.0)})
>>> policy = LearnedPolicy(items, response, epsilon=0.0, warmup=0)
>>> for _ in range(300):  # customers buy again what they bought three times
...     response.learn_outcome({"times_bought": 3.0, "again": 1.0}, True)
...     response.learn_outcome({"times_bought": 0.0, "popular": 1.0}, False)
>>> decision = policy.decide(OfferRequest(state, now_ts=86_400.0, outputs={}, excluded=set()))
>>> decision.item_id, decision.probability, decision.reason.startswith("you bought it before")
('tea', 1.0, True)
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from models.learners.base import Learner
from models.learners.cooccurrence import ItemCooccurrence
from models.learners.response import OfferResponse
from models.learners.segments import SegmentFavourites
from models.policies import candidates
from models.policies.base import Decision, OfferPolicy, OfferRequest, register_policy, required_learner
from models.policies.candidate_features import FEATURES, collect
from models.settings import ModelSettings


@register_policy
class LearnedPolicy(OfferPolicy):
    name = "learned"
    version = "learned-1"
    learns_from_outcomes = True

    def __init__(self, items: ItemCooccurrence, response: OfferResponse, favourites: SegmentFavourites | None = None,
                 epsilon: float = 0.1, explore_top: int = 5, warmup: int = 200) -> None:
        self.items = items
        self.response = response
        self.favourites = favourites
        self.epsilon = epsilon
        self.explore_top = explore_top
        self.warmup = warmup

    @classmethod
    def from_settings(cls, settings: ModelSettings, learners: Mapping[str, Learner]) -> LearnedPolicy:
        return cls(required_learner(learners, "cooccurrence", cls.name),
                   required_learner(learners, "response", cls.name), candidates.favourites_of(learners),
                   epsilon=settings.learned_epsilon, explore_top=settings.learned_explore_top,
                   warmup=settings.learned_warmup)

    def decide(self, request: OfferRequest) -> Decision | None:
        found = collect(request.state, self.items, self.favourites, request.outputs, request.excluded,
                        request.now_ts)
        if not found:
            return None
        learned = self.response.outcomes >= self.warmup
        probability = self.response.probability
        # The relevance breaks ties (and ranks alone before the model has learned enough).
        scored = sorted(((probability(c.features) if learned else 0.0) + 1e-3 * c.relevance, c.item_id)
                        for c in found.values())
        scored.reverse()
        top = scored[:self.explore_top]
        chosen, share = 0, 1.0
        if self.epsilon > 0 and len(top) > 1:
            rng = random.Random(f"{request.state.customer_id}:{request.now_ts}")
            explore = rng.random() < self.epsilon
            chosen = rng.randrange(len(top)) if explore else 0
            share = self.epsilon / len(top) + (1 - self.epsilon if chosen == 0 else 0.0)
        score, item_id = top[chosen]
        candidate = found[item_id]
        reason = candidates.reason(candidate.source, candidate.subject)
        if learned:
            reason += f" ({min(score, 1.0):.0%} likely to convert)"
        features = tuple(round(candidate.features.get(name, 0.0), 4) for name in FEATURES)
        return Decision(item_id, candidate.category, max(score, 0.0), reason, probability=share, features=features)
