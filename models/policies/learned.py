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
>>> from models.calibration import sigmoid
>>> from models.learners.response import OfferResponse, pack_values
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

import math
from collections.abc import Iterator, Mapping, Sequence
from operator import mul
from typing import overload

from models.calibration import sigmoid
from models.learners.base import Learner
from models.learners.cooccurrence import ItemCooccurrence
from models.learners.response import OfferResponse, pack_values
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
from models.policies.candidate_features import FEATURES, Candidates, CandidateScorer, collect
from models.policies.draws import DecisionDraws
from models.settings import ModelSettings

# Its weights are averaged over tens of thousands of outcomes: 32 more move them by a fraction of a percent.
REREAD_WEIGHTS_EVERY = 32


@register_policy
class LearnedPolicy(OfferPolicy):
    name = "learned"
    version = "learned-2"
    learns_from_outcomes = True

    def __init__(self, items: ItemCooccurrence, response: OfferResponse, favourites: SegmentFavourites | None = None,
                 epsilon: float = 0.1, explore_top: int = 5, warmup: int = 200, teach: int = 4,
                 explore_within: float = 0.5, uplift: float = 0.0, by_value: bool = False) -> None:
        self.items = items
        self.response = response
        self.favourites = favourites
        self.epsilon = epsilon
        self.explore_top = explore_top
        self.explore_within = explore_within
        self.warmup = warmup
        self.teach = teach
        self.uplift = uplift
        self.by_value = by_value
        self._scorer: tuple[int, CandidateScorer] | None = None  # the response model's weights, as last read

    @classmethod
    def from_settings(cls, settings: ModelSettings, learners: Mapping[str, Learner]) -> LearnedPolicy:
        return cls(required_learner(learners, "cooccurrence", cls.name),
                   required_learner(learners, "response", cls.name), candidates.favourites_of(learners),
                   epsilon=settings.learned_epsilon, explore_top=settings.learned_explore_top,
                   warmup=settings.learned_warmup, teach=settings.learned_teach_candidates,
                   explore_within=settings.learned_explore_within, uplift=settings.learned_uplift,
                   by_value=settings.learned_by_value)

    def decide(self, request: OfferRequest) -> Decision | None:
        ranking = self._ranking(request)
        if ranking is None:
            return None
        found, scored, pool, learned, rng = ranking
        chosen, share = 0, 1.0
        if pool:
            explore = rng.random() < self.epsilon
            chosen = pool[rng.randrange(len(pool))] if explore else 0
            share = self._shares(scored, pool)[scored[chosen][1]]
        score, item_id = scored[chosen]
        candidate = found[item_id]
        reason = candidates.reason(candidate.source, candidate.subject)
        if learned and self.by_value:
            reason += f" (worth {max(score, 0.0):.2f} on average, by price)"
        elif learned and self.uplift > 0 and self.response.organic is not None:
            reason += f" ({max(score, 0.0):.0%} more likely bought with the offer)"
        elif learned:
            score = sigmoid(score)
            reason += f" ({score:.0%} likely to convert)"
        return Decision(item_id, candidate.category, max(score, 0.0), reason, probability=share,
                        features=pack_values(candidate.values),
                        examples=_Taught(self, scored, chosen, found, rng) if self.teach else ())

    def probabilities(self, request: OfferRequest) -> dict[str, float]:
        """The probability of each item `decide` may choose now: what off-policy evaluation weighs by."""
        ranking = self._ranking(request)
        if ranking is None:
            return {}
        _, scored, pool, _, _ = ranking
        return self._shares(scored, pool) if pool else {scored[0][1]: 1.0}

    def _shares(self, scored: list[tuple[float, str]], pool: list[int]) -> dict[str, float]:
        return epsilon_greedy_shares([scored[n][1] for n in pool], scored[0][1], self.epsilon)

    def _scorer_of(self, response: OfferResponse) -> CandidateScorer:
        """The response model's weights as candidates are scored by, read again each REREAD_WEIGHTS_EVERY
        outcomes learned (live, it learns between nearly every two decisions, and reading them cost 10 µs)."""
        reading = response.learned // REREAD_WEIGHTS_EVERY
        if self._scorer is None or self._scorer[0] != reading:
            self._scorer = (reading, CandidateScorer(*response.weights(FEATURES)))
        return self._scorer[1]

    def _ranking(self, request: OfferRequest) -> tuple[Candidates, list[tuple[float, str]], list[int],
                                                       bool, DecisionDraws] | None:
        """The candidates, scored best first, the positions explored among (empty: no exploration), whether the
        model ranks them, and the decision's seeded draw."""
        response = self.response
        found = collect(request.state, self.items, self.favourites, request.outputs, request.excluded,
                        request.now_ts, repeat_rates=response.repeat_rates())
        if not found:
            return None
        learned = response.learned >= self.warmup
        if learned:
            # The logit ranks as the probability does and costs no exp per candidate.
            scored = found.logits(self._scorer_of(response))
            organic = response.organic_weights(FEATURES) if self.uplift > 0 else None
            if organic is not None:
                # What the offer adds: its conversion less what the customer would have bought anyway.
                base, anyway = organic
                lam = self.uplift
                scored = [(sigmoid(z) - lam * sigmoid(base + sum(map(mul, anyway, found.values_of(item_id)))), item_id)
                          for z, item_id in scored]
            elif self.by_value:
                scored = [(sigmoid(z), item_id) for z, item_id in scored]
            if self.by_value:  # expected value: the (added) conversion times log(1 + price), as nbo values items
                info_of = self.items.info.get
                scored = [(p * math.log1p(info.price if (info := info_of(item_id)) is not None else 0.0), item_id)
                          for p, item_id in scored]
        else:  # ranks by relevance alone before the model has learned enough
            scored = found.relevance()
        scored.sort(reverse=True)
        rng = DecisionDraws.of(request.state.customer_id, request.now_ts)
        pool: list[int] = []
        if self.epsilon > 0 and len(scored) > 1:
            # Explore among the top candidates that are nearly as likely as the best (an offer nobody would take
            # teaches little and wastes the customer's attention).
            ranks_odds = learned and self.uplift <= 0 and not self.by_value  # the scores are logits
            floor = scored[0][0] + math.log(self.explore_within) if ranks_odds else -math.inf
            pool = [n for n, (z, _) in enumerate(scored[:self.explore_top]) if z >= floor]
            if len(pool) < 2:
                pool = []
        return found, scored, pool, learned, rng

    def _examples(self, scored: list[tuple[float, str]], chosen: int, found: Candidates,
                  rng: DecisionDraws) -> tuple[tuple[str, tuple[float, ...]], ...]:
        """Candidates not offered that the response model learns from by their implicit outcome: the next best
        ones (where the ranking is decided) and as many drawn from the rest (so it also sees what it ranks low)."""
        others = scored[:chosen] + scored[chosen + 1:]  # (score, item), best first
        best = self.teach - self.teach // 2
        picked = others[:best]
        rest = others[best:]
        if rest:
            picked += rng.sample(rest, min(len(rest), self.teach // 2))
        values_of = found.values_of
        return tuple([(item_id, values_of(item_id)) for _, item_id in picked])  # the learner packs what it keeps


Example = tuple[str, tuple[float, ...]]


class _Taught(Sequence[Example]):
    """A decision's taught candidates (`LearnedPolicy._examples`), built when first read: a decision the guardrails
    drop as a repeat of the last offer (three in ten of a learned arm's) or made while the customer's list of waiting
    examples is full never needs them, and building them is a fifth of a decision's cost. The draws they take are
    the decision's own, which nothing else draws from after it, so they come out the same whenever read."""

    __slots__ = ("_built", "_make")

    def __init__(self, policy: LearnedPolicy, scored: list[tuple[float, str]], chosen: int, found: Candidates,
                 rng: DecisionDraws) -> None:
        self._built: tuple[Example, ...] | None = None
        self._make: tuple[LearnedPolicy, list[tuple[float, str]], int, Candidates, DecisionDraws] | None = (
            policy, scored, chosen, found, rng)

    def _examples(self) -> tuple[Example, ...]:
        if self._built is None:
            assert self._make is not None
            policy, scored, chosen, found, rng = self._make
            self._built, self._make = policy._examples(scored, chosen, found, rng), None  # the ranking freed
        return self._built

    @overload
    def __getitem__(self, index: int) -> Example: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Example]: ...

    def __getitem__(self, index: int | slice) -> Example | Sequence[Example]:
        return self._examples()[index]

    def __len__(self) -> int:
        return len(self._examples())

    def __bool__(self) -> bool:  # without building them: there are some if any candidate was not offered
        return bool(self._built) if self._make is None else len(self._make[1]) > 1

    def __iter__(self) -> Iterator[Example]:
        return iter(self._examples())

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, Sequence) else other)

    def __hash__(self) -> int:
        return hash(self._examples())

    def __repr__(self) -> str:
        return repr(self._examples())
