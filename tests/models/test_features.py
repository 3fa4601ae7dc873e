import orjson

from models.features import (
    BASE_FEATURES,
    FeatureSpace,
    compact_features,
    expand_features,
)
from models.state import CustomerState
from schemas import parse_event
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
