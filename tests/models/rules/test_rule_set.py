"""Rules held by the guardrails: every policy chooses only among the items the rules allow, at the decision's
event time, and nothing changes when there are neither rules nor a catalog."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from models.catalog import Catalog, CatalogEntry
from models.learners.cooccurrence import ItemCooccurrence, ItemInfo
from models.personalizer import Personalizer
from models.policies.base import Decision, OfferPolicy, OfferRequest
from models.policies.baselines import Popular, RandomItem
from models.policies.guardrails import Guardrails
from models.policies.nbo import NextBestOffer
from models.rules import RuleSet, parse_rules
from models.settings import ModelSettings
from models.state import CustomerState
from schemas import parse_event
from schemas.experiments import ExperimentConfig
from tests.helpers import T0, click, raw

TS = T0.timestamp()
# Most popular first.
ITEMS = (("wine", "alcohol", 30.0), ("tea", "grocery", 4.0), ("mug", "home", 8.0), ("pot", "home", 20.0))


def known_items() -> ItemCooccurrence:
    items = ItemCooccurrence()
    for rank, (item, category, price) in enumerate(ITEMS):
        for _ in range(len(ITEMS) - rank):
            items.observe_item(ItemInfo(item, category, price), TS)
    return items


def rails_with(rules: str, catalog: Catalog, items: ItemCooccurrence | None = None) -> Guardrails:
    rails = Guardrails(refresh_s=0, cap_per_hour=1000)
    rails.rules = RuleSet(parse_rules(rules), catalog, fallback=_fallback(items))
    return rails


def _fallback(items: ItemCooccurrence | None):  # type: ignore[no-untyped-def]
    def describe(item_id: str) -> CatalogEntry | None:
        info = items.info.get(item_id) if items is not None else None
        return CatalogEntry(item_id, info.category, info.price, in_catalog=False) if info else None
    return describe


def offered(rails: Guardrails, policy: OfferPolicy, at: float = TS, customer: str = "c1",
            outputs: dict[str, object] | None = None) -> str | None:
    decision = rails.decide(policy, CustomerState(customer), at, outputs or {})
    return decision.item_id if decision is not None else None


def test_out_of_stock_and_hidden_items_never_reach_any_policy_and_come_back_when_restocked() -> None:
    items, catalog = known_items(), Catalog()
    rails = rails_with("", catalog)
    catalog.apply("wine", CatalogEntry("wine", "alcohol", 30.0, in_stock=False))
    catalog.apply("tea", CatalogEntry("tea", "grocery", 4.0, hidden=True))
    assert offered(rails, Popular(items)) == "mug"
    for n in range(200):  # random draws only among the allowed
        assert offered(rails, RandomItem(items), at=TS + n) in {"mug", "pot"}
    state = CustomerState("c1", affinity={"alcohol": 5.0, "grocery": 1.0})
    decision = rails.decide(NextBestOffer(items), state, TS, {})
    assert decision is not None and decision.item_id in {"mug", "pot"}
    catalog.apply("wine", CatalogEntry("wine", "alcohol", 30.0))  # back in stock
    assert offered(rails, Popular(items)) == "wine"
    assert rails.rules is not None and rails.rules.blocked_at(TS) == {"tea"}  # no exclusion left behind


def test_the_validity_window_is_judged_at_the_event_time_of_each_decision() -> None:
    items, catalog = known_items(), Catalog()
    rails = rails_with("", catalog)
    catalog.apply("wine", CatalogEntry("wine", "alcohol", 30.0, valid_from=TS + 100, valid_to=TS + 200))
    # Back and forth in event time (a replay's partitions interleave): each decision at its own time.
    for at, expected in ((TS, "tea"), (TS + 100, "wine"), (TS + 199, "wine"), (TS + 200, "tea"), (TS + 50, "tea"),
                         (TS + 150, "wine")):
        assert offered(rails, Popular(items), at=at) == expected, at


def test_written_rules_hold_back_categories_also_for_items_known_only_from_events() -> None:
    items, catalog = known_items(), Catalog()
    rails = rails_with('exclude: item.category == "alcohol"', catalog, items)
    assert offered(rails, Popular(items)) == "tea"  # wine is in no catalog: its events say alcohol
    assert rails.rules is not None and "wine" in rails.rules.blocked_at(TS)  # judged once, excluded up front since
    rails = rails_with("include: item.in_catalog and item.price > 5", catalog, items)
    assert offered(rails, Popular(items)) is None  # nothing is in the catalog
    catalog.apply("pot", CatalogEntry("pot", "home", 20.0))
    assert offered(rails, Popular(items)) == "pot"


def test_rules_on_the_customer_hold_per_decision() -> None:
    items, catalog = known_items(), Catalog()
    rails = rails_with('exclude: customer.segment == 2 and item.category == "alcohol"; '
                       "include: customer.purchases >= 0 and customer.segment != 9", catalog, items)
    assert offered(rails, Popular(items), outputs={"segment": 2}) == "tea"
    assert offered(rails, Popular(items), outputs={"segment": 1}) == "wine"
    assert offered(rails, Popular(items), outputs={"segment": 9}) is None  # no item for this customer


class Stubborn(OfferPolicy):
    """A policy that ignores its exclusions."""

    name, version = "stubborn", "stubborn-1"

    def decide(self, request: OfferRequest) -> Decision | None:
        return Decision("wine", "alcohol", 1.0, "always wine")


def test_a_policy_that_ignores_exclusions_offers_nothing_rather_than_a_refused_item() -> None:
    catalog = Catalog()
    rails = rails_with("", catalog)
    catalog.apply("wine", CatalogEntry("wine", "alcohol", 30.0, hidden=True))
    assert offered(rails, Stubborn()) is None
    catalog.apply("wine", CatalogEntry("wine", "alcohol", 30.0))
    assert offered(rails, Stubborn()) == "wine"


def test_without_rules_or_catalog_decisions_are_as_before() -> None:
    events = [parse_event("clickstream", raw(click(customer=f"c{n % 7}", item=f"i{n % 11}",
                                                   category=f"cat{n % 3}", event_id=f"e{n}")))
              for n in range(300)]
    with_rules, without = Personalizer(), Personalizer()
    without.guardrails.rules = None
    states_a: dict[str, CustomerState] = {}
    states_b: dict[str, CustomerState] = {}
    for event in events:
        a = with_rules.process(states_a.setdefault(event.customer_id, CustomerState(event.customer_id)), event)
        b = without.process(states_b.setdefault(event.customer_id, CustomerState(event.customer_id)), event)
        assert a.decision == b.decision


def test_an_experiment_arm_adds_its_own_rules_to_the_deployment_s() -> None:
    personalizer = Personalizer(ModelSettings(rules='exclude: item.category == "home"', policy="popular"))
    config = ExperimentConfig.start("r", "a=popular:50,b=popular:50",
                                    rules={"b": 'exclude: item.category == "alcohol"'})
    personalizer.run_experiment(config)
    assert personalizer.experiment is not None
    seen: dict[str, set[str]] = {"a": set(), "b": set()}
    for n in range(400):
        customer = f"c{n % 40}"
        event = parse_event("clickstream", raw(click(customer=customer, item=ITEMS[n % 4][0],
                                                     category=ITEMS[n % 4][1], event_id=f"e{n}")))
        outcome = personalizer.process(CustomerState(customer), event)
        if outcome.decision is not None and outcome.arm is not None:
            seen[outcome.arm].add(outcome.decision.item_id)
    assert "wine" in seen["a"] and "wine" not in seen["b"], seen
    assert not (seen["a"] | seen["b"]) & {"mug", "pot"}, seen


def test_bad_rules_stop_the_configuration_with_what_and_where(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match=r"PERSO_RULES rule 1 \(exclude\): unknown field item.color"):
        ModelSettings(rules="exclude: item.color == 'red'")
    path = tmp_path / "rules.txt"
    path.write_text("# held back\ninclude: item.in_stock\nexclude: item.price <\n")
    with pytest.raises(ValidationError, match=r"PERSO_RULES_FILE .*rules.txt rule 2 \(exclude\): syntax error"):
        ModelSettings(rules_file=path)
    with pytest.raises(ValidationError, match="cannot read the file"):
        ModelSettings(rules_file=tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="arm 'b'"):
        Personalizer().run_experiment(ExperimentConfig.start("x", "a=nbo:50,b=nbo:50", rules={"b": "exclude: 1"}))
    with pytest.raises(ValueError, match="no arm named 'c'"):
        ExperimentConfig.start("x", "a=nbo:50,b=nbo:50", rules={"c": "exclude: item.hidden"})
