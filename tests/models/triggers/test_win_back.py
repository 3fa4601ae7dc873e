"""The win-back trigger through the Personalizer: one offer per lapse, only when the churn risk is high enough."""

from __future__ import annotations

from datetime import timedelta

from models.personalizer import Personalizer
from models.settings import ModelSettings
from models.state import CustomerState
from models.triggers.win_back import WinBack
from tests.helpers import T0, click, purchase
from tests.models.triggers.test_abandoned_cart import run

DAY = timedelta(days=1)


def personalizer(min_churn: float) -> Personalizer:
    # An untrained churn model says 0.5 for everyone.
    return Personalizer(ModelSettings(triggers=["win_back"], winback_days=30, winback_min_churn=min_churn))


def history() -> list[dict[str, object]]:
    return [click(item="ele-001"), click(customer="c1", item="ele-002", at=T0 + timedelta(minutes=1)),
            purchase(items=(("ele-003", "electronics", 50.0),), at=T0 + timedelta(minutes=2))]


def test_a_lapsed_customer_at_risk_gets_one_win_back() -> None:
    p, state = personalizer(min_churn=0.4), CustomerState("c1")
    fired = run(p, state, history(), until=(T0 + 29 * DAY).timestamp())
    assert fired == []
    outcome = p.catch_up(state, (T0 + 31 * DAY).timestamp())
    assert outcome is not None
    [offer] = outcome.moments
    assert offer.key == f"winback:{round(state.last_event_ts * 1000)}"
    assert offer.ts == state.last_event_ts + 30 * DAY.total_seconds()  # at its due time, in stream time
    assert offer.decision.reason.startswith("we miss you: ") and offer.channel == "email"
    assert run(p, state, [], until=(T0 + 300 * DAY).timestamp()) == []  # once per lapse


def test_a_new_event_ends_the_lapse_and_the_next_one_gets_its_own() -> None:
    p, state = personalizer(min_churn=0.4), CustomerState("c1")
    first = run(p, state, history(), until=(T0 + 31 * DAY).timestamp())
    back = click(item="ele-009", at=T0 + 40 * DAY)
    second = run(p, state, [back], until=(T0 + 71 * DAY).timestamp())
    assert len(first) == 1 and len(second) == 1 and first != second


def test_a_customer_not_at_risk_gets_none_and_is_checked_again_later() -> None:
    p, state = personalizer(min_churn=1.0), CustomerState("c1")
    assert run(p, state, history(), until=(T0 + 31 * DAY).timestamp()) == []
    anchor, recheck = state.learner_data["win_back"]
    assert anchor == state.last_event_ts and recheck == anchor + 37 * DAY.total_seconds()  # not spent
    trigger = p.moments.triggers["win_back"]
    assert isinstance(trigger, WinBack)
    trigger.min_churn = 0.0  # the risk threshold met at the next check
    assert run(p, state, [], until=(T0 + 36 * DAY).timestamp()) == []
    assert len(run(p, state, [], until=(T0 + 38 * DAY).timestamp())) == 1
