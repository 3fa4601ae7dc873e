from datetime import timedelta

import orjson

from models.cooccurrence import ItemCooccurrence, ItemInfo
from models.decision import NextBestOffer
from models.features import BASE_FEATURES, DAY, CustomerState, compact_features, expand_features
from models.personalizer import ModelConfig, Personalizer
from models.propensity import PRIOR, PropensityModel
from models.segments import SegmentModel
from schemas import parse_event
from tests.helpers import T0, click, purchase, raw

TS = T0.timestamp()


def test_cooccurrence_finds_bundles_not_just_popular_items() -> None:
    items = ItemCooccurrence()
    for n in range(50):
        items.learn_one(["a", "b"], TS + n)
        items.learn_one(["pop", f"x{n}"], TS + n)  # 'pop' is everywhere, with everything
        for item in ("a", "b", "pop", "pop", f"x{n}"):
            items.observe_item(ItemInfo(item, "cat", 10.0), TS + n)
    items.learn_one(["a", "pop"], TS + 60)
    neighbours = dict(items.neighbours("a"))
    assert neighbours["b"] > 5 * neighbours["pop"]
    assert items.popular(k=1) == ["pop"]


def test_cooccurrence_memory_is_bounded() -> None:
    items = ItemCooccurrence(max_neighbours=5, max_items=100)
    for n in range(2000):
        items.learn_one(["hub", f"i{n}"], TS + n)
        items.observe_item(ItemInfo(f"i{n}", f"cat{n % 7}", 1.0), TS + n)
    assert len(items.pair_weight["hub"]) <= 10
    assert len(items.item_weight) <= 110
    assert all(len(top) <= 2 * items.max_per_category for top in items.category_top.values())


def test_cooccurrence_decays_old_evidence() -> None:
    items = ItemCooccurrence(half_life_days=1.0)
    items.learn_one(["a", "old"], TS)
    items.learn_one(["a", "new"], TS + 10 * DAY)
    weights = items.pair_weight["a"]
    assert weights["new"] > 500 * weights["old"]


def test_propensity_learns_from_delayed_labels() -> None:
    model = PropensityModel(horizon_days=7, snapshot_every_s=0)
    assert model.predict_one({"f": 1.0}) == PRIOR
    base = dict.fromkeys(BASE_FEATURES, 0.0)
    buyer, browser = {**base, "cart_rate": 0.8, "frequency": 2.0}, {**base, "cart_rate": 0.0, "frequency": 0.0}
    for n in range(300):
        ts = TS + n * DAY
        pending = model.snapshot([], ts, buyer)
        assert model.settle(pending, ts + DAY, purchased=True) == []  # bought within horizon: positive
        pending = model.snapshot([], ts, browser)
        assert model.settle(pending, ts + 3 * DAY, purchased=False) == pending  # not yet labelled
        assert model.settle(pending, ts + 8 * DAY, purchased=False) == []  # horizon passed: negative
    assert model.predict_one(buyer) > 0.8 > 0.2 > model.predict_one(browser)
    assert model.metrics()["roc_auc"] > 0.9


def test_segments_separate_distinct_customers_and_describe_them() -> None:
    model = SegmentModel(n_segments=2, halflife=0.1)
    big = {"monetary": 8.0, "frequency": 3.0}
    small = {"monetary": 0.5, "frequency": 0.0}
    for _ in range(200):
        model.learn_one(big)
        model.learn_one(small)
    assert model.predict_one(big) != model.predict_one(small)
    assert "high spend" in model.describe(model.predict_one(big))


def test_decision_excludes_what_was_just_bought_and_caps_frequency() -> None:
    items = ItemCooccurrence()
    for n, item in enumerate(("phone", "case", "charger")):
        items.observe_item(ItemInfo(item, "electronics", 50.0 + n), TS)
    items.learn_one(["phone", "case", "charger"], TS)
    state = CustomerState("c1", recent_items=["phone"], recent_purchases=[["case", TS]],
                          affinity={"electronics": 1.0})
    nbo = NextBestOffer(cap_per_hour=2, refresh_s=0)
    decision = nbo.decide(state, TS + 60, 0.5, items)
    assert decision is not None and decision.item_id == "charger"
    assert "together with phone" in decision.reason
    state.offer_times = [TS, TS + 30]
    assert nbo.decide(state, TS + 60, 0.5, items) is None  # capped
    assert nbo.decide(state, TS + 3700, 0.5, items) is not None  # an hour later


def test_cold_start_customer_gets_a_popular_item() -> None:
    personalizer = Personalizer()
    for n in range(5):
        personalizer.process(CustomerState(f"c{n}"), parse_event("clickstream", raw(click(customer=f"c{n}"))))
    outcome = personalizer.process(CustomerState("new"), parse_event(
        "clickstream", raw(click(customer="new", kind="search"))))
    assert outcome is not None and outcome.decision is not None
    assert outcome.decision.reason == "popular right now"


def test_segment_favourites_are_bounded_and_ranked() -> None:
    from models.favourites import SegmentFavourites

    favourites = SegmentFavourites(max_per_segment=3)
    for n in range(20):
        favourites.learn_one(0, [f"i{n}"], weight=float(n))
    favourites.learn_one(1, ["only"])
    assert favourites.predict_one(0, k=2) == ["i19", "i18"]
    assert len(favourites.counts[0]) <= 6
    assert favourites.predict_one(1) == ["only"] and favourites.predict_one(7) == []


def test_decision_offers_segment_favourites_with_a_reason() -> None:
    items = ItemCooccurrence()
    items.observe_item(ItemInfo("fav", "home", 40.0), TS)
    state = CustomerState("c1", affinity={"books": 1.0})
    decision = NextBestOffer().decide(state, TS, 0.5, items, favourites=["fav"], segment_label="home lovers")
    assert decision is not None and decision.item_id == "fav"
    assert decision.reason == "popular with customers like you (home lovers)"


def test_decision_offers_a_repeat_purchase_once_outside_the_exclusion_window() -> None:
    items = ItemCooccurrence()
    for item in ("coffee", "mug"):
        items.observe_item(ItemInfo(item, "grocery", 12.0), TS)
    bought = [["coffee", TS - 40 * DAY], ["coffee", TS - 70 * DAY], ["mug", TS - 5 * DAY]]
    state = CustomerState("c1", recent_purchases=bought, affinity={"grocery": 1.0})
    decision = NextBestOffer(exclude_days=30).decide(state, TS, 0.5, items)
    assert decision is not None and decision.item_id == "coffee"  # the mug was bought 5 days ago
    assert decision.reason == "you bought it before (2 times)"
    assert NextBestOffer(exclude_days=60).decide(state, TS, 0.5, items) is None


def test_stored_features_survive_another_workers_category_order() -> None:
    state = CustomerState("c1", affinity={"books": 3.0, "toys": 1.0}, events=4, views=4)
    x = state.features(TS, ["books", "toys", "garden"])
    stored = orjson.loads(orjson.dumps(compact_features(x)))  # as it comes back from Redis
    assert len(orjson.dumps(stored)) < len(orjson.dumps(x)) / 2
    restored = expand_features(stored, ["garden", "toys", "books", "food"])
    assert restored["aff_books"] == 0.75 and restored["aff_toys"] == 0.25
    assert restored["aff_garden"] == restored["aff_food"] == 0.0
    assert all(abs(restored[k] - x[k]) < 1e-5 for k in BASE_FEATURES)
    assert expand_features(x, ["books"]) is x  # snapshots written before the compact form


def test_segment_is_reassigned_on_purchase_new_session_or_after_the_interval() -> None:
    personalizer = Personalizer(ModelConfig(resegment_every_s=900))
    state = CustomerState("c1")

    def learned_after(body: dict[str, object]) -> int:
        before = personalizer.segments.n_learned
        kind = "purchases" if body["type"] == "purchase" else "clickstream"
        personalizer.process(state, parse_event(kind, raw(body)))
        return personalizer.segments.n_learned - before

    assert learned_after(click(at=T0)) == 1  # first event: no segment yet
    assert learned_after(click(at=T0 + timedelta(minutes=1))) == 0  # same session, a minute later
    assert learned_after(purchase(at=T0 + timedelta(minutes=2))) == 1
    assert learned_after(click(at=T0 + timedelta(minutes=3), session="s2")) == 1
    assert learned_after(click(at=T0 + timedelta(minutes=4), session="s2")) == 0
    assert learned_after(click(at=T0 + timedelta(minutes=19), session="s2")) == 1  # 15 min since the last
    assert state.segment is not None
    assert Personalizer().config.resegment_every_s == 0  # the default learns from every event


def test_caches_stay_out_of_checkpoints_and_follow_what_is_learned() -> None:
    from models import checkpoint
    from models.favourites import SegmentFavourites

    personalizer = Personalizer()
    for n in range(30):
        personalizer.process(CustomerState(f"c{n % 3}"), parse_event("purchases", raw(purchase(
            customer=f"c{n % 3}", items=(("a", "home", 5.0), ("b", "home", 7.0)), at=T0 + timedelta(hours=n)))))
    assert personalizer.items.neighbours("a") and personalizer.items.popular("home")
    restored = Personalizer()
    checkpoint.load_into(restored, checkpoint.dump(personalizer))
    assert restored.items._neighbour_cache == {} and restored.items._category_popular == {}
    assert restored.items.neighbours("a") == personalizer.items.neighbours("a")

    favourites = SegmentFavourites()
    favourites.learn_one(0, ["x"])
    assert favourites.predict_one(0) == ["x"]
    favourites.learn_one(0, ["y", "y"], weight=2.0)
    assert favourites.predict_one(0) == ["y", "x"]  # a purchase re-ranks at once


def test_segments_do_not_depend_on_the_interpreters_hash_seed() -> None:
    import subprocess
    import sys

    # River's KMeans drew new feature coordinates in set order, which PYTHONHASHSEED changes.
    script = (
        "from models.segments import SegmentModel\n"
        "m = SegmentModel(n_segments=3)\n"
        "for n in range(300):\n"
        "    x = {f'aff_c{n % 7}': 1.0, 'frequency': n % 5, 'monetary': (n * 7) % 11, 'events': n % 3}\n"
        "    print(m.learn_predict_one(x), end='')\n"
    )
    runs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed, "PYTHONPATH": "."}).stdout for seed in ("1", "2", "3")}
    assert len(runs) == 1 and len(next(iter(runs))) == 300
