from models.learners.segments import SegmentFavourites


def test_segment_favourites_are_bounded_and_ranked() -> None:
    favourites = SegmentFavourites(max_per_segment=3)
    for n in range(20):
        favourites.learn_basket(0, [f"i{n}"], weight=float(n))
    favourites.learn_basket(1, ["only"])
    assert favourites.predict_one(0, k=2) == ["i19", "i18"]
    assert len(favourites.counts[0]) <= 6
    assert favourites.predict_one(1) == ["only"] and favourites.predict_one(7) == []
    assert favourites.predict_one(None) == []


def test_a_purchase_re_ranks_at_once() -> None:
    favourites = SegmentFavourites()
    favourites.learn_basket(0, ["x"])
    assert favourites.predict_one(0) == ["x"]
    favourites.learn_basket(0, ["y", "y"], weight=2.0)
    assert favourites.predict_one(0) == ["y", "x"]
