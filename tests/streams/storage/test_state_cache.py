import pytest

from models.state import CustomerState
from streams.storage.state_cache import StateCache, compress_state, decompress_state


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
    assert len(cache) == 3
    assert cache.get("c2") is states[2]  # hot: the very object the pipeline mutates
    restored = cache.get("c0")  # cooled when c2 arrived: restored from its compressed form
    assert restored is not states[0] and restored == states[0]
    assert cache.get("c0") is restored  # and hot again


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


def test_hot_tier_must_fit_in_capacity() -> None:
    with pytest.raises(ValueError, match="hot"):
        StateCache(capacity=5, hot=10)
