"""The response learner: candidates not offered are learned by their implicit outcome, once it is known."""

from __future__ import annotations

import orjson
import pytest

from models.features import FeatureSpace
from models.learners.base import EventContext, TimeContext
from models.learners.response import MAX_WAITING, OfferResponse, unpack_values
from models.state import DAY, CustomerState
from schemas.events import PurchaseEvent, parse_event
from tests.helpers import later, purchase

NAMES = ("times", "fresh")


def order(state: CustomerState, response: OfferResponse, items: tuple[str, ...], days: float) -> None:
    event = parse_event("purchases", orjson.dumps(purchase(items=tuple((i, "grocery", 2.0) for i in items),
                                                            at=later(days=days))))
    assert isinstance(event, PurchaseEvent)
    state.update(event)
    response.learn_one(EventContext(ts=event.epoch, state=state, space=FeatureSpace(), event=event))


def test_a_remembered_candidate_is_positive_when_bought_within_the_window_and_negative_after_it() -> None:
    response, state = OfferResponse(window_s=7 * DAY), CustomerState("c1")
    start = later().timestamp()
    response.remember(state, start, [("tea", (1.0, 0.0)), ("mug", (0.0, 1.0))], NAMES)
    assert response.next_wake(state) == start + 7 * DAY + 1.0
    order(state, response, ("tea",), days=2)  # tea bought within the window: marked, learned when it closes
    assert response.implicit == 0
    assert [(example[0], example[3]) for example in state.learner_data["response"]] == [("tea", True), ("mug", False)]
    response.learn_time(TimeContext(ts=start + 6 * DAY, state=state, space=FeatureSpace()))
    assert response.implicit == 0  # the window has not passed yet
    response.learn_time(TimeContext(ts=start + 8 * DAY, state=state, space=FeatureSpace()))
    assert (response.implicit, response.implicit_bought) == (2, 1)  # both at once: a positive and a negative
    assert not state.learner_data["response"] and response.next_wake(state) is None


def test_a_purchase_after_the_window_does_not_make_a_positive() -> None:
    response, state = OfferResponse(window_s=7 * DAY), CustomerState("c1")
    response.remember(state, later().timestamp(), [("tea", (1.0, 0.0))], NAMES)
    order(state, response, ("tea",), days=9)
    assert (response.implicit, response.implicit_bought) == (1, 0)


def test_a_full_waiting_list_takes_no_more_and_keeps_the_oldest() -> None:
    response, state = OfferResponse(), CustomerState("c1")
    for n in range(MAX_WAITING + 5):
        response.remember(state, float(n), [(f"item{n}", (1.0, 0.0))], NAMES)
    waiting = state.learner_data["response"]
    assert len(waiting) == MAX_WAITING and waiting[0][0] == "item0"


def test_implicit_outcomes_teach_the_model() -> None:
    response, state = OfferResponse(window_s=7 * DAY), CustomerState("c1")
    for week in range(40):  # (the log ends before today: events from the future are rejected)
        start = later(days=7 * week).timestamp()
        response.remember(state, start, [("staple", (1.0, 0.0)), ("gadget", (0.0, 1.0))], NAMES)
        order(state, response, ("staple",), days=7 * week + 1)
    response.learn_time(TimeContext(ts=later(days=7 * 41).timestamp(), state=state, space=FeatureSpace()))
    assert response.implicit == 80 and response.implicit_bought == 40
    assert response.probability({"times": 1.0}) > 0.7 > 0.3 > response.probability({"fresh": 1.0})


def test_repeat_rate_counts_buyers_who_came_back_for_the_item() -> None:
    response = OfferResponse()
    for n in range(20):
        state = CustomerState(f"c{n}")
        order(state, response, ("milk", "vase"), days=0)
        order(state, response, ("milk",), days=3)  # everyone re-buys milk, nobody the vase
    assert response.repeat_rate("milk") > 0.8 > 0.2 > response.repeat_rate("vase") > 0
    assert 0 < response.repeat_rate("never-seen") < 1


def test_the_repeat_rates_a_decision_reads_follow_the_orders_and_survive_a_checkpoint() -> None:
    import pickle

    from models.policies.candidate_features import REPEAT_RATE

    response = OfferResponse()
    assert response.repeat_rate("never-seen") == REPEAT_RATE  # what a decision assumes of an item not counted
    first = CustomerState("c1")
    order(first, response, ("milk", "vase"), days=0)
    rates = response.repeat_rates()  # built here, then kept up to date as orders come
    order(first, response, ("milk", "tea"), days=3)
    order(CustomerState("c2"), response, ("tea",), days=4)
    expected = {item: response.repeat_rate(item) for item in ("milk", "vase", "tea")}
    assert rates == response.repeat_rates() == expected and rates["milk"] > rates["vase"]
    restored = pickle.loads(pickle.dumps(response))
    assert "_rates" not in pickle.loads(pickle.dumps(response)).__getstate__()
    assert restored.repeat_rates() == expected


def test_waiting_examples_are_packed_and_those_saved_before_packing_are_still_learned() -> None:
    response, state = OfferResponse(window_s=7 * DAY), CustomerState("c1")
    start = later().timestamp()
    response.remember(state, start, [("tea", (0.123456, 1.0))], NAMES)
    [(item, ts, packed, bought)] = state.learner_data["response"]
    assert isinstance(packed, str) and unpack_values(packed) == pytest.approx((0.123456, 1.0), abs=1e-4)
    # A state saved by a release that kept the values as a tuple: learned all the same.
    state.learner_data["response"] = ((item, ts, packed, bought), ("mug", ts, (0.5, 0.0), False))
    response.learn_time(TimeContext(ts=start + 8 * DAY, state=state, space=FeatureSpace()))
    assert response.implicit == 2


def test_the_repeat_counts_keep_the_most_bought_items_within_their_bound() -> None:
    response = OfferResponse(max_items=10)
    customers = [CustomerState(f"c{n}") for n in range(3)]
    for day, item in enumerate(f"rare-{n}" for n in range(30)):
        order(customers[0], response, (item,), days=day)
    for state in customers:  # "staple" has three buyers, each of whom comes back
        order(state, response, ("staple",), days=40)
        order(state, response, ("staple",), days=41)
    assert len(response.buyers) <= 11 and "staple" in response.buyers
    response.repeat_rates()  # built, then kept: it must follow what is forgotten
    for n in range(50):
        order(customers[1], response, (f"new-{n}",), days=50 + n)
    assert len(response.buyers) <= 11 and "new-49" in response.buyers  # among equals, the newest stay
    assert response.buyers["staple"] == (3, 3) and response.repeat_rate("staple") == 0.5  # (3 + 1) / (3 + 5)
    assert "rare-0" not in response.buyers and "rare-0" not in response.repeat_rates()  # forgotten: the prior's
    assert response.repeat_rate("rare-0") == response.repeat_rate("never-counted")
    assert response.repeat_rates() == {item: response.repeat_rate(item) for item in response.buyers}
