"""A learned decision scores its candidates without building their feature vectors (`Candidates.logits`): those
scores must be the linear model's own, intercept + weights . values, on real candidates and any weights."""

from __future__ import annotations

import random

import orjson

from models.personalizer import Personalizer
from models.policies.base import OfferRequest
from models.policies.candidate_features import FEATURES, Candidates, CandidateScorer, collect
from models.policies.learned import LearnedPolicy
from models.settings import ModelSettings
from models.state import CustomerState
from schemas.events import parse_event
from streams.datasets.synthetic import SyntheticShop, history

TOLERANCE = 1e-9  # the same sum in another order


def captured_candidates(requests: int = 400) -> list[Candidates]:
    """The candidates of the learned policy's last requests in a replayed synthetic log: customers who bought
    and who did not, items bought lately and long ago, proposed by one source or several."""
    personalizer = Personalizer(ModelSettings(policy="learned", learned_warmup=0))
    policy = personalizer.policy
    assert isinstance(policy, LearnedPolicy)
    kept: list[OfferRequest] = []
    decide = policy.decide

    def capturing(request: OfferRequest):  # type: ignore[no-untyped-def]
        kept.append(request)
        del kept[:-requests]
        return decide(request)

    policy.decide = capturing  # type: ignore[method-assign]
    states: dict[str, CustomerState] = {}
    for kind, body in history(SyntheticShop(n_customers=60, seed=2, prefix="tc"), 40, 1_764_547_200.0):
        event = parse_event(kind, orjson.dumps(body))
        personalizer.process(states.setdefault(event.customer_id, CustomerState(event.customer_id)), event)
    return [collect(r.state, policy.items, policy.favourites, r.outputs, r.excluded, r.now_ts,
                    repeat_rates=policy.response.repeat_rates()) for r in kept]


def test_logits_are_the_dot_product_of_the_values_for_any_weights() -> None:
    found = captured_candidates()
    histories = [values[FEATURES.index("never_bought")] for c in found for values in map(c.values_of, c)]
    assert 0.0 in histories and 1.0 in histories  # both kinds of candidate were scored
    rng = random.Random(7)
    for _ in range(5):
        intercept, weights = rng.gauss(0, 1), [rng.gauss(0, 1) for _ in FEATURES]
        scorer = CandidateScorer(intercept, weights)
        for candidates in found:
            for logit, item_id in candidates.logits(scorer):
                values = candidates.values_of(item_id)
                expected = intercept + sum(w * x for w, x in zip(weights, values, strict=True))
                expected += 1e-6 * candidates[item_id].relevance  # the tie-break
                assert abs(logit - expected) <= TOLERANCE * max(1.0, abs(expected)), item_id


def test_a_candidate_is_what_its_values_say() -> None:
    for candidates in captured_candidates(100):
        for item_id in candidates:
            candidate = candidates[item_id]
            assert candidate.values == candidates.values_of(item_id) and len(candidate.values) == len(FEATURES)
            assert all(-1.0 <= value <= 4.0 for value in candidate.values), candidate.features
            assert candidates.relevance()[list(candidates).index(item_id)] == (candidate.relevance, item_id)
