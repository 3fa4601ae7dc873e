import orjson

from models.features import (
    BASE_FEATURES,
    FeatureSpace,
    behaviour_features,
    compact_features,
    expand_features,
    implied_behaviour,
)
from models.state import CustomerState
from schemas import parse_event
from streams.datasets.synthetic import SyntheticShop, history
from tests.helpers import T0, purchase, raw

TS = T0.timestamp()


def test_stored_features_survive_another_workers_category_order() -> None:
    state = CustomerState("c1", affinity={"books": 3.0, "toys": 1.0}, events=4, views=4)
    x = FeatureSpace(["books", "toys", "garden"]).features(state, TS)
    stored = orjson.loads(orjson.dumps(compact_features(x)))  # as it comes back from Redis
    assert len(orjson.dumps(stored)) < len(orjson.dumps(x)) / 2
    restored = expand_features(stored, ["garden", "toys", "books", "food"])
    assert restored["aff_books"] == 0.75 and restored["aff_toys"] == 0.25
    assert restored["aff_garden"] == restored["aff_food"] == 0.0
    assert all(abs(restored[k] - x[k]) < 1e-5 for k in BASE_FEATURES)


def test_the_space_notes_categories_in_first_seen_order_up_to_its_bound() -> None:
    space = FeatureSpace()
    lines = tuple((f"i{n}", f"cat{n}", 1.0) for n in range(25))
    space.note(parse_event("purchases", raw(purchase(items=lines))))
    assert space.categories == [f"cat{n}" for n in range(20)]


def test_a_state_implies_the_order_features_it_had_at_every_earlier_moment() -> None:
    """implied_behaviour(state now, t) is what behaviour_features(state at t, t) was, for the features it names:
    over 40 days of a synthetic shop (events in time order), at every event and at a timer's visit before each."""
    shop = SyntheticShop(n_customers=40, seed=4, prefix="f")
    states: dict[str, CustomerState] = {}
    moments: dict[str, list[tuple[float, dict[str, float]]]] = {}
    for kind, body in history(shop, 40, TS):
        event = parse_event(kind, orjson.dumps(body))
        state = states.setdefault(event.customer_id, CustomerState(event.customer_id))
        past = moments.setdefault(event.customer_id, [])
        if state.events and event.epoch - 60 > state.last_event_ts:  # a visit in the silence before this event
            past.append((event.epoch - 60, behaviour_features(state, event.epoch - 60)))
        state.update(event)
        past.append((event.epoch, behaviour_features(state, event.epoch)))
    compared = 0
    for customer_id, past in moments.items():
        state = states[customer_id]
        for ts, then in past:
            if ts in state.recent_orders and then["log_orders"] != implied_behaviour(state, ts)["log_orders"]:
                continue  # an event at the very time of a later order: the order counts from that time on
            implied = implied_behaviour(state, ts)
            assert {name: then[name] for name in implied} == implied
            compared += len(implied)
    assert compared > 20_000
