"""Delayed labels: a snapshot settles when its horizon passes in stream time, whether or not the customer
comes back; silence is what the learner sees between events (timer visits)."""

import pytest

from models.features import FeatureSpace
from models.learners.base import EventContext, TimeContext
from models.learners.churn import ChurnModel
from models.learners.delayed import MODELS, PRIOR
from models.learners.propensity import PropensityModel
from models.state import DAY, CustomerState
from schemas.events import parse_event
from tests.helpers import T0, later, purchase, raw

TS = T0.timestamp()


def bought(state: CustomerState, day: float, model: PropensityModel) -> None:
    event = parse_event("purchases", raw(purchase(state.customer_id, at=later(days=day))))
    ctx = EventContext(ts=event.epoch, state=state, space=FeatureSpace(), event=event)
    model.observe_before(ctx)
    state.update(event)
    model.learn_one(ctx)


def visit(state: CustomerState, day: float, model: PropensityModel) -> None:
    model.learn_time(TimeContext(ts=TS + day * DAY, state=state, space=FeatureSpace()))


@pytest.mark.parametrize("classifier", MODELS)
def test_regular_buyers_score_high_and_lapsed_buyers_low_once_horizons_pass(classifier: str) -> None:
    model = PropensityModel(horizon_days=7, model=classifier)
    assert model.predict(CustomerState("x"), TS)["propensity"] == PRIOR
    for n in range(60):
        regular, lapsed = CustomerState(f"w{n}"), CustomerState(f"l{n}")
        bought(lapsed, n * 0.01, model)
        for week in range(24):
            bought(regular, week * 5.0 + n * 0.01, model)
            # The lapsed customer never comes back: only the horizon passing labels their moments, learned
            # at the timer's visits.
            visit(lapsed, week * 5.0 + 2.5 + n * 0.01, model)
    assert model.n_learned > 2000
    active = CustomerState("a")
    for week in range(4):
        bought(active, 200 + week * 5.0, model)
    gone = CustomerState("g")
    bought(gone, 200, model)
    p_active = model.predict(active, TS + 216 * DAY)["propensity"]
    p_gone = model.predict(gone, TS + 260 * DAY)["propensity"]
    assert p_active > 0.7 and p_gone < 0.1, (p_active, p_gone)
    # Why, in the customer's own values: a tree's path or a linear model's largest contributions.
    assert "4 orders" in model.explain(active, TS + 216 * DAY)["propensity_reason"]


def test_a_failed_event_can_be_undone_on_the_state_copy() -> None:
    model, state = PropensityModel(horizon_days=7, snapshot_every_s=0), CustomerState("c1")
    bought(state, 0, model)
    before = state.copy()
    bought(state, 1, model)
    assert state.learner_data != before.learner_data
    state.restore(before)
    assert state.learner_data == before.learner_data


def test_churn_is_the_mirror_of_a_purchase_within_its_horizon() -> None:
    churn = ChurnModel(horizon_days=30)
    assert churn.purchase_is_positive is False and churn.predict(CustomerState("c"), TS) == {"churn_risk": PRIOR}
