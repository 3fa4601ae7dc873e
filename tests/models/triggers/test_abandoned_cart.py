"""The abandoned-cart trigger through the Personalizer: one reminder per episode, none once the item is bought."""

from __future__ import annotations

from datetime import timedelta

import orjson

from models.personalizer import Personalizer
from models.settings import ModelSettings
from models.state import CustomerState
from schemas.events import InputEvent, parse_event
from schemas.experiments import ExperimentConfig
from tests.helpers import T0, click, purchase

HOUR = timedelta(hours=1)


def event(body: dict[str, object]) -> InputEvent:
    return parse_event("purchases" if body["type"] == "purchase" else "clickstream", orjson.dumps(body), oldest=None)


def personalizer(**settings: object) -> Personalizer:
    return Personalizer(ModelSettings(**{"triggers": ["abandoned_cart"], "cart_reminder_minutes": 60, **settings}))


def run(p: Personalizer, state: CustomerState, bodies: list[dict[str, object]], until: float) -> list[str]:
    """Apply the events, then visit the customer up to `until` (as the worker's timer does); the reminders' ids."""
    fired: list[str] = []
    for body in bodies:
        e = event(body)
        outcome = p.catch_up(state, min(e.epoch, until))  # visits due before the event come first
        fired += [f.key for f in outcome.moments] if outcome else []
        p.process(state, e)
    outcome = p.catch_up(state, until)
    return fired + ([f.key for f in outcome.moments] if outcome else [])


def test_a_cart_left_gets_one_reminder_after_the_delay() -> None:
    p, state = personalizer(), CustomerState("c1")
    add = click(kind="add_to_cart", item="tea", category="grocery", price=3.5)
    assert run(p, state, [add], until=(T0 + 59 * timedelta(minutes=1)).timestamp()) == []
    assert state.wake_ts == (T0 + HOUR).timestamp()  # the reminder's due time is the customer's wake time
    outcome = p.catch_up(state, (T0 + HOUR).timestamp())
    assert outcome is not None and [(f.key, f.decision.item_id, f.decision.reason, f.channel)
                                    for f in outcome.moments] == [(f"cart:{add['event_id']}", "tea",
                                                                   "still in your cart", "email")]
    assert run(p, state, [], until=(T0 + 100 * HOUR).timestamp()) == []  # once per episode


def test_no_reminder_when_the_item_is_bought_meanwhile() -> None:
    p, state = personalizer(), CustomerState("c1")
    bodies = [click(kind="add_to_cart", item="tea", category="grocery", price=3.5),
              purchase(items=(("tea", "grocery", 3.5),), at=T0 + timedelta(minutes=20))]
    assert run(p, state, bodies, until=(T0 + 10 * HOUR).timestamp()) == []


def test_buying_another_item_leaves_the_reminder_due() -> None:
    p, state = personalizer(), CustomerState("c1")
    add = click(kind="add_to_cart", item="tea", category="grocery", price=3.5)
    bodies = [add, purchase(items=(("mug", "home", 8.0),), at=T0 + timedelta(minutes=20))]
    assert run(p, state, bodies, until=(T0 + 10 * HOUR).timestamp()) == [f"cart:{add['event_id']}"]


def test_re_adding_is_the_same_episode_and_after_a_purchase_a_new_one() -> None:
    # exclude_bought_days=0: else the Guardrails hold back what the customer bought lately, reminders too
    p, state = personalizer(exclude_bought_days=0), CustomerState("c1")
    first = click(kind="add_to_cart", item="tea", category="grocery", price=3.5)
    again = click(kind="add_to_cart", item="tea", category="grocery", price=3.5, at=T0 + 2 * HOUR)
    assert run(p, state, [first, again], until=(T0 + 5 * HOUR).timestamp()) == [f"cart:{first['event_id']}"]
    bought = purchase(items=(("tea", "grocery", 3.5),), at=T0 + 6 * HOUR)
    later = click(kind="add_to_cart", item="tea", category="grocery", price=3.5, at=T0 + 7 * HOUR)
    assert run(p, state, [bought, later], until=(T0 + 9 * HOUR).timestamp()) == [f"cart:{later['event_id']}"]


def test_the_guardrails_hold_back_a_reminder_of_an_item_bought_lately() -> None:
    p, state = personalizer(exclude_bought_days=30), CustomerState("c1")
    bodies = [purchase(items=(("tea", "grocery", 3.5),), at=T0 - 48 * HOUR),
              click(kind="add_to_cart", item="tea", category="grocery", price=3.5)]
    assert run(p, state, bodies, until=(T0 + 10 * HOUR).timestamp()) == []
    # Spent all the same (the moment has passed): the episode stays, not due again.
    assert [episode[-1] for episode in state.learner_data["abandoned_cart"]] == [True]


def test_a_purchase_read_ahead_of_the_add_ends_the_episode_before_it_begins() -> None:
    p, state = personalizer(), CustomerState("c1")
    add = click(kind="add_to_cart", item="tea", category="grocery", price=3.5)
    p.process(state, event(purchase(items=(("tea", "grocery", 3.5),), at=T0 + timedelta(minutes=5))))
    p.process(state, event(add))
    assert run(p, state, [], until=(T0 + 10 * HOUR).timestamp()) == []


def test_the_state_stays_small_and_survives_a_round_trip() -> None:
    p, state = personalizer(), CustomerState("c1")
    bodies = [click(kind="add_to_cart", item=f"i{n}", category="grocery", price=1.0, at=T0 + n * timedelta(minutes=1))
              for n in range(20)]
    run(p, state, bodies, until=(T0 + timedelta(minutes=20)).timestamp())
    assert len(state.learner_data["abandoned_cart"]) == 5
    restored = CustomerState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    assert restored.learner_data["abandoned_cart"] == state.learner_data["abandoned_cart"]


def test_without_triggers_configured_nothing_is_tracked() -> None:
    p, state = Personalizer(ModelSettings()), CustomerState("c1")
    run(p, state, [click(kind="add_to_cart", item="tea", category="grocery", price=3.5)],
        until=(T0 + 10 * HOUR).timestamp())
    assert "abandoned_cart" not in state.learner_data


def test_an_arm_runs_the_trigger_and_the_holdout_records_its_ghost() -> None:
    p = personalizer(triggers=[])
    config = ExperimentConfig.start("cart", "holdout:34,a=nbo:33,b=nbo+abandoned_cart:33", salt="s",
                                    now=T0 - HOUR)
    p.run_experiment(config)
    assert p.experiment is not None
    by_arm: dict[str, str] = {}
    n = 0
    while len(by_arm) < 3:
        customer = f"c{n}"
        by_arm.setdefault(p.experiment.arm_of(customer).name, customer)
        n += 1
    fired = {}
    for arm, customer in by_arm.items():
        state = CustomerState(customer)
        add = click(customer=customer, kind="add_to_cart", item="tea", category="grocery", price=3.5)
        p.process(state, event(add))
        outcome = p.catch_up(state, (T0 + 2 * HOUR).timestamp())
        moments, tallies = (outcome.moments, outcome.tallies) if outcome is not None else ([], {})
        fired[arm] = ([f.key for f in moments], sorted(arm for _, arm in tallies), f"cart:{add['event_id']}")
    assert fired["b"][:2] == ([fired["b"][2]], ["b"])
    assert fired["a"][:2] == ([], [])
    assert fired["holdout"][:2] == ([], ["holdout@abandoned_cart"])  # decided and recorded, never sent
