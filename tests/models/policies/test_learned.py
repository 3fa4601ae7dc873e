"""The learned policy learns from what became of its offers: closed offers teach the response model."""

from __future__ import annotations

import orjson

from models.learners.response import OfferResponse
from models.personalizer import Personalizer
from models.settings import ModelSettings
from models.state import DAY, CustomerState
from schemas.events import parse_event
from tests.helpers import click, later, purchase


def test_closed_offers_teach_the_response_model_and_decisions_say_their_probability() -> None:
    personalizer = Personalizer(ModelSettings(policy="learned", learned_warmup=0))
    states: dict[str, CustomerState] = {}
    decisions = []
    for n in range(40):
        customer = f"c{n}"
        state = states.setdefault(customer, CustomerState(customer))
        for body in (click(customer=customer, item="phone", price=500.0, at=later(minutes=n)),
                     click(customer=customer, item="case", price=20.0, at=later(minutes=n, days=0.001))):
            outcome = personalizer.process(state, parse_event("clickstream", orjson.dumps(body)))
            if outcome.decision is not None:
                decisions.append(outcome.decision)
        if n % 2:
            order = purchase(customer=customer, items=(("case", "electronics", 20.0),), at=later(minutes=n, days=1))
            personalizer.process(state, parse_event("purchases", orjson.dumps(order)))
    assert decisions and all(0 < d.probability <= 1 and d.features is not None for d in decisions)
    assert all(state.open_offers for state in states.values())
    end = later(days=10).timestamp()
    for state in states.values():
        personalizer.tick(state, max(end, state.last_event_ts))
    response = personalizer.learner("response")
    assert isinstance(response, OfferResponse)
    assert response.outcomes >= len(states) and 0 < response.converted < response.outcomes
    assert not any(state.open_offers for state in states.values())
    assert end - later().timestamp() > 7 * DAY
