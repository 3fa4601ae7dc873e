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


def test_a_neighbour_list_is_ranked_again_once_enough_new_baskets_are_learned() -> None:
    """Reused until 200 more baskets, or 5% more of all baskets so far once that is more: with views learning
    co-occurrences, an absolute count re-ranked about one list per event on a busy worker. A list shorter than
    asked is ranked each time."""
    items = ItemCooccurrence()
    ranked: list[str] = []
    rank = items._rank_neighbours

    def counting(item_id: str, k: int) -> list[tuple[str, float]]:
        ranked.append(item_id)
        return rank(item_id, k)

    items._rank_neighbours = counting  # type: ignore[method-assign]
    partners = [f"p{n}" for n in range(10)]

    def baskets(n: int, other: str) -> None:
        for _ in range(n):
            items.learn_together(["a", other], TS)

    for partner in partners:
        baskets(1_000, partner)
    first = items.neighbours("a")
    assert len(first) == 10 and len(ranked) == 1
    baskets(499, "p9")  # 5% of 10,000 is 500: not yet
    assert items.neighbours("a") == first and len(ranked) == 1
    baskets(1, "p9")
    assert items.neighbours("a")[0][0] == "p9" and len(ranked) == 2
    items.neighbours("b")  # one neighbour: shorter than asked, ranked each time
    items.neighbours("b")
    assert ranked[2:] == ["b", "b"]
    small = ItemCooccurrence()
    for partner in partners:
        small.learn_together(["a", partner], TS)
    cached = small.neighbours("a")
    for _ in range(199):
        small.learn_together(["a", "new"], TS)
    assert small.neighbours("a") == cached  # below 200 new baskets: the cached list
    small.learn_together(["a", "new"], TS)
    assert small.neighbours("a")[0][0] == "new"
