from typing import Any

import orjson
import pytest

from models.personalizer import Personalizer
from models.state import CustomerState
from schemas.events import parse_event
from streams.datasets.synthetic import SyntheticShop, history
from streams.storage.state_cache import StateCache, StateCodec, compress_state, decompress_state

TS = 1_790_000_000.123456


def busy_state(customer_id: str) -> CustomerState:
    return CustomerState(customer_id, events=40, views=30, affinity={"books": 3.5, "home": 1.25},
                         recent_items=[f"boo-{n:03d}" for n in range(10)],
                         recent_purchases=[("boo-001", 1.7e9 + n) for n in range(5)],
                         learner_data={"propensity": ((1.7e9, (0.5,) * 25, False, 1.7e9, 1),)}, segment=2)


def test_compressed_state_round_trips_and_is_small() -> None:
    state = busy_state("c1")
    blob = compress_state(state)
    assert decompress_state(blob) == state
    assert len(blob) < 400


def test_a_state_is_a_handful_of_objects_for_the_garbage_collector() -> None:
    import gc

    state = decompress_state(compress_state(busy_state("c1")))
    for _ in range(4):  # each pass untracks one more level of tuples holding only plain values
        gc.collect()
    tracked = [o for o in gc.get_objects() if o is state or any(o is getattr(state, f) for f in state.__slots__)]
    nested = [p for p in [*state.learner_data["propensity"], *state.recent_purchases] if gc.is_tracked(p)]
    assert len(tracked) <= 7 and nested == []


def test_cold_states_come_back_equal_and_hot_ones_are_the_same_object() -> None:
    cache = StateCache(capacity=10, hot=2)
    states = [busy_state(f"c{n}") for n in range(3)]
    for state in states:
        cache.put(state)
    assert len(cache) == 3 and cache.hot_held == 2  # c0 cooled when c2 arrived
    assert cache.get("c2") is states[2]  # hot: the very object the pipeline mutates
    restored = cache.get("c0")  # cooled when c2 arrived: restored from its compressed form
    assert restored is not states[0] and restored == states[0]
    assert cache.get("c0") is restored  # and hot again
    assert cache.hot_held == 2  # by cooling the least recently used (c1)


def test_least_recently_used_states_are_dropped_past_capacity() -> None:
    cache = StateCache(capacity=3, hot=1)
    for n in range(5):
        cache.put(busy_state(f"c{n}"))
    assert len(cache) == 3
    assert cache.get("c0") is None and cache.get("c1") is None
    assert cache.get("c2") is not None and cache.get("c4") is not None
    cache.discard("c4")
    assert cache.get("c4") is None
    cache.clear()
    assert len(cache) == 0


def test_a_full_cache_drops_the_least_recently_used_a_hundredth_at_a_time() -> None:
    cache = StateCache(capacity=1_010, hot=10)
    for n in range(3_000):
        cache.put(CustomerState(f"c{n}", events=1))
        assert cache.get("c0") is not None  # used all along: never the least recently used
        assert 990 <= len(cache) <= 1_010 or n < 1_010
    assert cache.get("c2100") is not None and cache.get("c2999") is not None
    assert cache.get("c1") is None and cache.get("c1500") is None


def test_hot_tier_must_fit_in_capacity() -> None:
    with pytest.raises(ValueError, match="hot"):
        StateCache(capacity=5, hot=10)


# --- the compressed form ------------------------------------------------------------------------------------------
def engine_states(customers: int = 60, days: int = 30) -> list[CustomerState]:
    """States as a worker holds them: a synthetic shop's events and the timer's visits between them."""
    shop = SyntheticShop(n_customers=customers, seed=12, prefix="z")
    personalizer, states = Personalizer(), {}
    for kind, body in history(shop, days, TS):
        event = parse_event(kind, orjson.dumps(body))
        state = states.setdefault(event.customer_id, CustomerState(event.customer_id))
        personalizer.catch_up(state, event.epoch)
        personalizer.process(state, event)
    return list(states.values())


def test_every_field_of_a_worker_state_comes_back_identical_and_small() -> None:
    codec = StateCodec()
    states = engine_states()
    blobs = [codec.compress(state) for state in states]
    for state, blob in zip(states, blobs, strict=True):
        back = codec.decompress(blob)
        assert back == state
        assert orjson.dumps(back.to_dict()) == orjson.dumps(state.to_dict())  # the very floats, in the same order
    # The dictionary (state.zdict) is there and fits the form: ~1,300 bytes where zlib and its preset dictionary
    # wrote ~1,720 (states with the timer's visits hold twice the snapshots of bench/memory.py's).
    assert sum(map(len, blobs)) / len(blobs) < 1_450


def test_values_the_compressed_form_does_not_shorten_come_back_as_they_were() -> None:
    def odd_snapshot(ts: float, features: Any) -> tuple[Any, ...]:
        return (ts, features, True, ts, 2)

    features = ("0,0,2.1679,1.1531,0,0,3.398,2.3979,2.4318,6.6641,4.3729,2.6093,1.2835,0.8308,1,4.9053,5.3504,"
                "0.2373,0.1102,1.7918,1,0,0,0,0")
    state = CustomerState(
        "c1", first_event_ts=TS, last_event_ts=TS + 5e-7, events=3, purchases=25, first_purchase_ts=TS - 1.0,
        last_purchase_ts=1e300, affinity_ts=0.0, segment_ts=-12.5, wake_ts=None, scored_ts=TS + 86_400.000_000_1,
        recent_orders=[TS + n for n in range(20)] + [TS - 1.0],  # out of order, and more orders than kept
        recent_purchases=[("a", TS + 3), ("b", TS + 0.25), ("c", 7.5)],  # not an order's time
        purchase_counts={"a": (2, TS + 3), "b": (1, TS + 1e-7)}, offer_times=[TS + 1e-7, 0.0],
        learner_data={"propensity": (odd_snapshot(TS, features), odd_snapshot(TS + 1, [0.5] * 25),
                                     odd_snapshot(TS + 2, "1,2,3")),
                      "churn": (), "rfm": "champions", "someone_else": ((TS, "x"),), "win_back": (TS, None)})
    codec = StateCodec()
    back = codec.decompress(codec.compress(state))
    assert back == state
    assert orjson.dumps(back.to_dict()) == orjson.dumps(state.to_dict())
    assert back.learner_data["propensity"][1][1] == (0.5,) * 25  # an older release's list, a tuple as ever
    by_hand = CustomerState("c2", last_event_ts=TS, offer_times=[7])  # a time as an int: the same time, a float
    assert codec.decompress(codec.compress(by_hand)).offer_times == [7.0]
    not_snapshots = CustomerState("c3", learner_data={"churn": ("x", 1), "propensity": ((TS,),)})
    assert codec.decompress(codec.compress(not_snapshots)) == not_snapshots


def test_the_engine_scores_the_same_when_every_state_goes_through_the_compressed_tier() -> None:
    shop = SyntheticShop(n_customers=30, seed=13, prefix="y")
    log = [parse_event(kind, orjson.dumps(body)) for kind, body in history(shop, 40, TS)]
    codec = StateCodec()

    def run(compressed: bool) -> list[Any]:
        personalizer, states, seen = Personalizer(), {}, []
        for event in log:
            held = states.get(event.customer_id)
            state = (codec.decompress(held) if compressed else held) if held else CustomerState(event.customer_id)
            visits = personalizer.catch_up(state, event.epoch)
            seen.append((visits.outputs if visits else None, personalizer.process(state, event).outputs))
            states[event.customer_id] = codec.compress(state) if compressed else state
        return seen

    assert run(compressed=True) == run(compressed=False)
