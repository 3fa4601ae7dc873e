from datetime import timedelta

from models import checkpoint
from models.learners.cooccurrence import ItemCooccurrence, ItemInfo
from models.personalizer import Personalizer
from models.state import DAY, CustomerState
from schemas import parse_event
from tests.helpers import T0, purchase, raw

TS = T0.timestamp()


def test_cooccurrence_finds_bundles_not_just_popular_items() -> None:
    items = ItemCooccurrence()
    for n in range(50):
        items.learn_together(["a", "b"], TS + n)
        items.learn_together(["pop", f"x{n}"], TS + n)  # 'pop' is everywhere, with everything
        for item in ("a", "b", "pop", "pop", f"x{n}"):
            items.observe_item(ItemInfo(item, "cat", 10.0), TS + n)
    items.learn_together(["a", "pop"], TS + 60)
    neighbours = dict(items.neighbours("a"))
    assert neighbours["b"] > 5 * neighbours["pop"]
    assert items.popular(k=1) == ["pop"]


def test_cooccurrence_memory_is_bounded() -> None:
    items = ItemCooccurrence(max_neighbours=5, max_items=100)
    for n in range(2000):
        items.learn_together(["hub", f"i{n}"], TS + n)
        items.observe_item(ItemInfo(f"i{n}", f"cat{n % 7}", 1.0), TS + n)
    assert len(items.pair_weight["hub"]) <= 10
    assert len(items.item_weight) <= 110
    assert all(len(top) <= 2 * items.max_per_category for top in items.category_top.values())


def test_cooccurrence_decays_old_evidence() -> None:
    items = ItemCooccurrence(half_life_days=1.0)
    items.learn_together(["a", "old"], TS)
    items.learn_together(["a", "new"], TS + 10 * DAY)
    weights = items.pair_weight["a"]
    assert weights["new"] > 500 * weights["old"]


def test_caches_stay_out_of_checkpoints_and_follow_what_is_learned() -> None:
    personalizer = Personalizer()
    for n in range(30):
        personalizer.process(CustomerState(f"c{n % 3}"), parse_event("purchases", raw(purchase(
            customer=f"c{n % 3}", items=(("a", "home", 5.0), ("b", "home", 7.0)), at=T0 + timedelta(hours=n)))))
    items = personalizer.learner("cooccurrence")
    assert isinstance(items, ItemCooccurrence)
    assert items.neighbours("a") and items.popular("home")
    restored = Personalizer()
    checkpoint.load_into(restored, checkpoint.dump(personalizer))
    restored_items = restored.learner("cooccurrence")
    assert isinstance(restored_items, ItemCooccurrence)
    assert restored_items._neighbour_cache == {} and restored_items._category_popular == {}
    assert restored_items.neighbours("a") == items.neighbours("a")
