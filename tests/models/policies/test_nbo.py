from models.learners.cooccurrence import ItemCooccurrence, ItemInfo
from models.learners.segments import SegmentFavourites
from models.personalizer import Personalizer
from models.policies.guardrails import Guardrails
from models.policies.nbo import NextBestOffer
from models.state import DAY, CustomerState
from schemas import parse_event
from tests.helpers import T0, click, raw

TS = T0.timestamp()


def test_decision_excludes_what_was_just_bought_and_caps_frequency() -> None:
    items = ItemCooccurrence()
    for n, item in enumerate(("phone", "case", "charger")):
        items.observe_item(ItemInfo(item, "electronics", 50.0 + n), TS)
    items.learn_together(["phone", "case", "charger"], TS)
    state = CustomerState("c1", recent_items=["phone"], recent_purchases=[["case", TS]],
                          affinity={"electronics": 1.0})
    rails, nbo = Guardrails(cap_per_hour=2, refresh_s=0), NextBestOffer(items)
    decision = rails.decide(nbo, state, TS + 60, {"propensity": 0.5})
    assert decision is not None and decision.item_id == "charger"
    assert "together with phone" in decision.reason
    state.offer_times = [TS, TS + 30]
    assert rails.decide(nbo, state, TS + 60, {"propensity": 0.5}) is None  # capped
    assert rails.decide(nbo, state, TS + 3700, {"propensity": 0.5}) is not None  # an hour later


def test_the_same_item_is_not_resent_before_the_refresh_interval() -> None:
    items = ItemCooccurrence()
    items.observe_item(ItemInfo("tea", "grocery", 4.0), TS)
    state = CustomerState("c1", affinity={"grocery": 1.0})
    rails, nbo = Guardrails(refresh_s=600), NextBestOffer(items)
    assert rails.decide(nbo, state, TS, {}) is not None
    assert rails.decide(nbo, state, TS + 60, {}) is None  # nothing relevant changed
    assert rails.decide(nbo, state, TS + 700, {}) is not None


def test_cold_start_customer_gets_a_popular_item() -> None:
    personalizer = Personalizer()
    for n in range(5):
        personalizer.process(CustomerState(f"c{n}"), parse_event("clickstream", raw(click(customer=f"c{n}"))))
    outcome = personalizer.process(CustomerState("new"), parse_event(
        "clickstream", raw(click(customer="new", kind="search"))))
    assert outcome is not None and outcome.decision is not None
    assert outcome.decision.reason == "popular right now"


def test_decision_offers_segment_favourites_with_a_reason() -> None:
    items = ItemCooccurrence()
    items.observe_item(ItemInfo("fav", "home", 40.0), TS)
    favourites = SegmentFavourites()
    favourites.learn_basket(3, ["fav"])
    state = CustomerState("c1", affinity={"books": 1.0})
    outputs = {"propensity": 0.5, "segment": 3, "segment_label": "home lovers"}
    decision = Guardrails().decide(NextBestOffer(items, favourites), state, TS, outputs)
    assert decision is not None and decision.item_id == "fav"
    assert decision.reason == "popular with customers like you (home lovers)"


def test_decision_offers_a_repeat_purchase_once_outside_the_exclusion_window() -> None:
    items = ItemCooccurrence()
    for item in ("coffee", "mug"):
        items.observe_item(ItemInfo(item, "grocery", 12.0), TS)
    bought = [["coffee", TS - 40 * DAY], ["coffee", TS - 70 * DAY], ["mug", TS - 5 * DAY]]
    state = CustomerState("c1", recent_purchases=bought, affinity={"grocery": 1.0})
    decision = Guardrails(exclude_days=30).decide(NextBestOffer(items), state, TS, {"propensity": 0.5})
    assert decision is not None and decision.item_id == "coffee"  # the mug was bought 5 days ago
    assert decision.reason == "you bought it before (2 times)"
    fresh = CustomerState("c1", recent_purchases=bought, affinity={"grocery": 1.0})
    assert Guardrails(exclude_days=60).decide(NextBestOffer(items), fresh, TS, {"propensity": 0.5}) is None


def test_checks_never_change_the_state() -> None:
    state = CustomerState("c1", offer_times=[TS - 7200, TS - 10])
    rails = Guardrails(cap_per_hour=1)
    assert not rails.permits(state, TS)
    assert state.offer_times == [TS - 7200, TS - 10]


def _explored_shop() -> tuple[ItemCooccurrence, CustomerState]:
    items = ItemCooccurrence()
    for n, item in enumerate(("phone", "case", "charger", "cable", "stand")):
        items.observe_item(ItemInfo(item, "electronics", 10.0 + 10 * n), TS)
    items.learn_together(["phone", "case", "charger", "cable", "stand"], TS)
    return items, CustomerState("c1", recent_items=["phone"], affinity={"electronics": 1.0})


def test_an_exploring_nbo_draws_its_items_with_the_probabilities_it_logs() -> None:
    from collections import Counter

    from models.policies.base import OfferRequest

    items, state = _explored_shop()
    greedy = NextBestOffer(items).decide(OfferRequest(state, TS, {}, {"phone"}))
    nbo = NextBestOffer(items, epsilon=0.4)
    drawn: Counter[str] = Counter()
    moments = 4000
    for n in range(moments):
        request = OfferRequest(state, TS + n, {}, {"phone"})
        shares = nbo.probabilities(request)
        decision = nbo.decide(request)
        assert decision is not None and greedy is not None
        assert abs(sum(shares.values()) - 1) < 1e-9 and set(shares) == {"case", "charger", "cable", "stand"}
        assert decision.probability == shares[decision.item_id]  # what the offer logs
        assert shares[greedy.item_id] == 0.6 + 0.4 / 4  # the greedy choice, plus its share of the draws
        drawn[decision.item_id] += 1
    for item, share in shares.items():  # binomial: 4 standard errors at most (~1 in 16,000 per item)
        assert abs(drawn[item] / moments - share) <= 4 * (share * (1 - share) / moments) ** 0.5


def test_nbo_explores_only_among_its_top_candidates_when_told_and_not_at_all_by_default() -> None:
    from models.policies.base import OfferRequest

    items, state = _explored_shop()
    request = OfferRequest(state, TS, {}, {"phone"})
    greedy = NextBestOffer(items).decide(request)
    assert greedy is not None and greedy.probability == 1.0
    assert NextBestOffer(items).probabilities(request) == {greedy.item_id: 1.0}
    shares = NextBestOffer(items, epsilon=0.5, explore_top=2).probabilities(request)
    assert len(shares) == 2 and shares[greedy.item_id] == 0.75
