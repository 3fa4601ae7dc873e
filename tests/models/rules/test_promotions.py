"""Promotions in the models: which decisions fall in a promotion's share, what it offers instead, and how an offer
whose budget was spent goes back to the ordinary choice."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from models.catalog import CatalogEntry
from models.personalizer import Personalizer
from models.promotions import PromotedDecision, Promotions
from models.settings import ModelSettings
from models.state import CustomerState
from schemas import parse_event
from schemas.promotions import PromotionConfig
from tests.helpers import T0, click, raw

TS = T0.timestamp()


def promo(share: float = 1.0, filter: str = '"organic" in item.tags', name: str = "green") -> PromotionConfig:
    return PromotionConfig(name=name, filter=filter, share=share, budget=10)


def test_a_decision_falls_in_a_share_by_a_stable_hash_of_customer_and_moment() -> None:
    from models.catalog import Catalog

    promotions = Promotions([promo(0.2, name="a"), promo(0.1, name="b")], Catalog())
    picks = [promotions.pick(f"c{n}", TS + n) for n in range(20_000)]
    share_a = sum(1 for p in picks if p is not None and p.name == "a") / len(picks)
    share_b = sum(1 for p in picks if p is not None and p.name == "b") / len(picks)
    assert abs(share_a - 0.2) < 0.015 and abs(share_b - 0.1) < 0.015, (share_a, share_b)
    again = Promotions([promo(0.2, name="a"), promo(0.1, name="b")], Catalog())
    assert [again.pick(f"c{n}", TS + n) is None for n in range(500)] == [p is None for p in picks[:500]]


def personalizer_with(share: float = 1.0, rules: str = "") -> Personalizer:
    settings = ModelSettings(policy="popular", rules=rules, promotions=f'[{{"name": "green", "filter": '
                             f'"\\"organic\\" in item.tags", "share": {share}, "budget": 3}}]')
    personalizer = Personalizer(settings)
    for item, tags in (("black", ()), ("green", ("organic",)), ("herbal", ("organic",)), ("mug", ())):
        personalizer.catalog.apply(item, CatalogEntry(item, "grocery", 4.0, tags=tags))
    # black is the most popular, then mug, then herbal, then green
    for n, item in enumerate(["black"] * 9 + ["mug"] * 6 + ["herbal"] * 3 + ["green"] * 2):
        personalizer.process(CustomerState(f"w{n}"), parse_event("clickstream", raw(click(
            customer=f"w{n}", item=item, category="grocery", event_id=f"w{n}"))))
    personalizer.learner("cooccurrence")._popular = []  # type: ignore[attr-defined]  # re-rank at once
    return personalizer


def decide(personalizer: Personalizer, customer: str, item: str = "mug") -> PromotedDecision | object:
    event = parse_event("clickstream", raw(click(customer=customer, item=item, category="grocery",
                                                 event_id=f"{customer}-e")))
    return personalizer.process(CustomerState(customer), event).decision


def test_in_its_share_the_best_matching_item_is_offered_with_the_ordinary_choice_as_fallback() -> None:
    personalizer = personalizer_with()
    decision = decide(personalizer, "c1")
    assert isinstance(decision, PromotedDecision)
    assert (decision.item_id, decision.reason, decision.promotion) == ("herbal", "on promotion: green", "green")
    assert decision.fallback is not None and decision.fallback.item_id == "black"


def test_a_promotion_offers_only_what_the_rules_allow() -> None:
    personalizer = personalizer_with(rules='exclude: item.item_id == "herbal"')
    decision = decide(personalizer, "c1")
    assert isinstance(decision, PromotedDecision) and decision.item_id == "green"
    personalizer.catalog.apply("green", CatalogEntry("green", "grocery", 4.0, tags=("organic",), in_stock=False))
    decision = decide(personalizer, "c2")  # no organic item may be offered: the ordinary choice goes
    assert not isinstance(decision, PromotedDecision) and decision is not None and decision.item_id == "black"


def test_outside_its_share_or_once_spent_the_ordinary_choice_goes() -> None:
    personalizer = personalizer_with(share=1.0)
    assert personalizer.promotions is not None
    personalizer.promotions.spent.add("green")
    decision = decide(personalizer, "c1")
    assert not isinstance(decision, PromotedDecision) and decision.item_id == "black"  # type: ignore[attr-defined]
    small = personalizer_with(share=0.05)
    promoted = sum(isinstance(decide(small, f"s{n}"), PromotedDecision) for n in range(400))
    assert 5 <= promoted <= 40, promoted


def test_a_refused_promotion_leaves_the_state_as_if_the_fallback_had_gone_out() -> None:
    personalizer = personalizer_with()
    personalizer.policy.learns_from_outcomes = True  # type: ignore[misc]  # so the offer is open for attribution
    state = CustomerState("c1")
    event = parse_event("clickstream", raw(click(customer="c1", item="mug", category="grocery", event_id="e1")))
    outcome = personalizer.process(state, event)
    assert isinstance(outcome.decision, PromotedDecision) and state.last_offer is not None
    assert state.last_offer["item_id"] == "herbal" and state.open_offers[0][1] == "herbal"
    fallback = personalizer.promotion_refused(state, outcome, "c1:e1")
    assert fallback.item_id == "black" and outcome.decision is fallback
    assert state.last_offer["item_id"] == "black" and state.last_offer["reason"] == fallback.reason
    assert state.open_offers[0][1] == "black" and len(state.offer_times) == 1


def test_bad_promotions_stop_the_configuration_with_what_is_wrong() -> None:
    with pytest.raises(ValidationError, match=r"promotion 'x': unknown field item\.colour"):
        ModelSettings(promotions='[{"name": "x", "filter": "item.colour == 1", "share": 0.1, "budget": 5}]')
    with pytest.raises(ValidationError, match="promotion 1: budget: Input should be greater than or equal to 1"):
        ModelSettings(promotions='[{"name": "x", "filter": "item.hidden", "share": 0.1, "budget": 0}]')
    with pytest.raises(ValidationError, match=r"shares add up to 1\.2"):
        ModelSettings(promotions='[{"name": "a", "filter": "item.hidden", "share": 0.6, "budget": 5}, '
                                 '{"name": "b", "filter": "item.hidden", "share": 0.6, "budget": 5}]')
    with pytest.raises(ValidationError, match="must be a JSON list"):
        ModelSettings(promotions='{"name": "a"}')
    with pytest.raises(ValidationError, match="promotion 'c'"):
        ModelSettings(promotions='[{"name": "c", "filter": "customer.segment == 1", "share": 0.1, "budget": 5}]')
