"""Attribution on one customer's state: offers open for a window, convert once, close with one outcome."""

from __future__ import annotations

import orjson

from models.experiments.attribution import Attribution, Tallies, outcome_of
from models.state import DAY, CustomerState
from schemas.events import OfferFeedback, PurchaseEvent, parse_event
from tests.helpers import feedback, later, purchase


def order(item: str, price: float, days: float) -> PurchaseEvent:
    event = parse_event("purchases", orjson.dumps(purchase(items=((item, "grocery", price),), at=later(days=days))))
    assert isinstance(event, PurchaseEvent)
    return event


def answer(offer_id: str, kind: str, days: float, **extra: object) -> OfferFeedback:
    event = parse_event("feedback", orjson.dumps(feedback(offer_id=offer_id, kind=kind, at=later(days=days), **extra)))
    assert isinstance(event, OfferFeedback)
    return event


def offered(attribution: Attribution, state: CustomerState, tallies: Tallies, item: str = "tea", days: float = 0,
            published: bool = True, offer_id: str = "c1:e1") -> None:
    attribution.join(state, "x", "nbo", tallies)
    attribution.record_offer(state, offer_id, item, 4.0, later(days=days).timestamp(), "x", "nbo", published, tallies)


def test_a_purchase_within_the_window_converts_the_offer_once() -> None:
    attribution, state, tallies = Attribution(window_s=7 * DAY), CustomerState("c1"), {}
    offered(attribution, state, tallies)
    for days in (1, 2):  # the second purchase of the item does not convert it again
        event = order("tea", 4.0, days)
        state.update(event)
        attribution.on_purchase(state, event, "x", tallies)
    counted = tallies["x", "nbo"]
    assert counted["converted_offers"] == 1 and counted["converted_customers"] == 1
    assert counted["attributed_revenue"] == 4.0 and counted["revenue"] == 8.0 and counted["buyers"] == 1
    assert counted["revenue_sq"] == 64.0  # the customer's revenue squared, once


def test_a_purchase_after_the_window_or_of_another_item_does_not_convert() -> None:
    attribution, state, tallies = Attribution(window_s=7 * DAY), CustomerState("c1"), {}
    offered(attribution, state, tallies)
    for item, days in (("coffee", 1), ("tea", 8)):
        event = order(item, 4.0, days)
        state.update(event)
        attribution.on_purchase(state, event, "x", tallies)
    attribution.expire(state, later(days=9).timestamp(), tallies)
    assert "converted_offers" not in tallies["x", "nbo"]
    assert tallies["x", "nbo"]["outcome:expired"] == 1 and not state.open_offers


def test_a_purchase_read_before_the_offer_s_trigger_still_converts_it() -> None:
    attribution, state, tallies = Attribution(window_s=7 * DAY), CustomerState("c1"), {}
    event = order("tea", 4.0, 2)  # purchases read ahead of the clickstream
    state.update(event)
    offered(attribution, state, tallies, days=1)
    assert tallies["x", "nbo"]["converted_offers"] == 1


def test_feedback_counts_once_per_kind_and_decides_the_outcome() -> None:
    attribution, state, tallies = Attribution(window_s=7 * DAY), CustomerState("c1"), {}
    offered(attribution, state, tallies)
    for kind in ("delivered", "opened", "opened", "clicked"):
        attribution.on_feedback(state, answer("c1:e1", kind, 0.1), tallies)
    attribution.expire(state, later(days=8).timestamp(), tallies)
    counted = tallies["x", "nbo"]
    assert (counted["delivered"], counted["opened"], counted["clicked"]) == (1, 1, 1)
    assert counted["outcome:clicked"] == 1


def test_a_redemption_converts_with_its_revenue_and_the_purchase_after_it_adds_nothing() -> None:
    attribution, state, tallies = Attribution(window_s=7 * DAY), CustomerState("c1"), {}
    offered(attribution, state, tallies)
    attribution.on_feedback(state, answer("c1:e1", "redeemed", 0.5, revenue=3.5), tallies)
    event = order("tea", 4.0, 0.6)
    state.update(event)
    attribution.on_purchase(state, event, "x", tallies)
    assert tallies["x", "nbo"]["converted_offers"] == 1 and tallies["x", "nbo"]["attributed_revenue"] == 3.5


def test_feedback_read_before_its_offer_waits_for_it() -> None:
    attribution, state, tallies = Attribution(window_s=7 * DAY), CustomerState("c1"), {}
    attribution.on_feedback(state, answer("c1:e1", "delivered", 0.1), tallies)
    assert state.pending_feedback and not tallies
    offered(attribution, state, tallies)
    assert tallies["x", "nbo"]["delivered"] == 1 and not state.pending_feedback


def test_held_out_offers_are_counted_not_published_and_expire_unseen() -> None:
    attribution, state, tallies = Attribution(window_s=7 * DAY), CustomerState("c1"), {}
    offered(attribution, state, tallies, published=False)
    attribution.expire(state, later(days=7).timestamp(), tallies)
    assert tallies["x", "nbo"]["offers"] == 1 and "published" not in tallies["x", "nbo"]
    assert tallies["x", "nbo"]["outcome:expired"] == 1


def test_open_offers_are_bounded_the_oldest_closing_first() -> None:
    attribution, state, tallies = Attribution(window_s=7 * DAY, max_open=3), CustomerState("c1"), {}
    for n in range(5):
        offered(attribution, state, tallies, item=f"i{n}", days=n * 0.01, offer_id=f"c1:e{n}")
    assert [offer[1] for offer in state.open_offers] == ["i2", "i3", "i4"]
    assert tallies["x", "nbo"]["outcome:expired"] == 2


def test_the_outcome_order() -> None:
    assert [outcome_of(flags) for flags in (0, 1, 1 | 4, 1 | 4 | 32)] == ["expired", "ignored", "clicked",
                                                                          "converted"]


def test_a_state_with_offers_survives_its_json_round_trip() -> None:
    attribution, state, tallies = Attribution(window_s=7 * DAY), CustomerState("c1"), {}
    offered(attribution, state, tallies)
    attribution.on_feedback(state, answer("c1:e9", "opened", 0.1), tallies)
    back = CustomerState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    assert back.open_offers == state.open_offers and back.experiment == state.experiment
    assert back.pending_feedback == state.pending_feedback and isinstance(back.open_offers[0], tuple)


def test_a_holdout_customer_s_ghost_offers_convert_for_their_own_ghost_arm() -> None:
    attribution, state, tallies = Attribution(window_s=7 * DAY), CustomerState("c1"), {}
    attribution.join(state, "x", "holdout", tallies)
    ts = later().timestamp()
    attribution.record_offer(state, "c1:e1", "tea", 4.0, ts, "x", "holdout", False, tallies)
    attribution.record_offer(state, "c1:e1@popular", "tea", 4.0, ts, "x", "holdout@popular", False, tallies)
    attribution.record_offer(state, "c1:e2@popular", "mug", 9.0, ts + 60, "x", "holdout@popular", False, tallies)
    for item, price, days in (("tea", 4.0, 1), ("mug", 9.0, 2)):
        event = order(item, price, days)
        state.update(event)
        attribution.on_purchase(state, event, "x", tallies)
    assert tallies["x", "holdout"]["converted_offers"] == 1 and tallies["x", "holdout"]["converted_customers"] == 1
    ghost = tallies["x", "holdout@popular"]
    assert ghost["converted_offers"] == 2 and ghost["converted_customers"] == 1  # one customer, counted once
    assert ghost["attributed_revenue"] == 13.0 and ghost["attributed_revenue_sq"] == 169.0
    assert "customers" not in ghost  # the ghost arm's customers are the holdout's
    back = CustomerState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    assert back.experiment == state.experiment


def test_a_holdout_customer_converted_under_two_references_is_counted_once_for_the_pair() -> None:
    """Whichever reference converts first, the pair is counted when the second does, and never again."""
    for first, second in (("tea", "mug"), ("mug", "tea")):
        attribution, state, tallies = Attribution(window_s=7 * DAY), CustomerState("c1"), {}
        attribution.join(state, "x", "holdout", tallies)
        ts = later().timestamp()
        attribution.record_offer(state, "c1:e1", "tea", 4.0, ts, "x", "holdout", False, tallies)
        for n, item in enumerate(("mug", "jam", "mug")):  # popular's offers: twice the mug; learned's: jam
            ghost = "holdout@learned" if item == "jam" else "holdout@popular"
            attribution.record_offer(state, f"c1:e{n}@x", item, 9.0, ts + n, "x", ghost, False, tallies)
        for item, days in ((first, 1), (second, 2), (first, 3), (second, 4)):
            event = order(item, 4.0, days)
            state.update(event)
            attribution.on_purchase(state, event, "x", tallies)
        holdout = tallies["x", "holdout"]
        assert holdout["converted_both:holdout|holdout@popular"] == 1, (first, holdout)
        assert not any(name.startswith("converted_both:") and "learned" in name for name in holdout)  # no jam
        assert tallies["x", "holdout@popular"]["converted_customers"] == 1
