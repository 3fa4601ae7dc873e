"""Caps per customer per day and per channel, in event time, through the Guardrails."""

from __future__ import annotations

import orjson
import pytest

from models.personalizer import Personalizer
from models.policies import Decision, Guardrails, OfferPolicy, OfferRequest
from models.policies.caps import KEY, OfferCaps, parse_channel_caps
from models.settings import ModelSettings
from models.state import DAY, CustomerState

HOUR = 3600.0


class Always(OfferPolicy):
    name, version = "always", "always-1"

    def __init__(self) -> None:
        self.n = 0

    def decide(self, request: OfferRequest) -> Decision:
        self.n += 1  # a new item each time: never a repeat
        return Decision(f"i{self.n}", None, 1.0, "test")


def rails(**caps: object) -> Guardrails:
    return Guardrails(cap_per_hour=100, refresh_s=0, caps=OfferCaps(**caps))  # type: ignore[arg-type]


def test_the_daily_cap_counts_every_channel_in_event_time() -> None:
    guard, policy, state = rails(per_day=3), Always(), CustomerState("c1")
    sent = [guard.decide(policy, state, t * HOUR, {}, channel=channel) is not None
            for t, channel in [(0, "web"), (1, "email"), (2, "web"), (3, "web"), (23.9, "email"), (24.0, "web")]]
    assert sent == [True, True, True, False, False, True]  # the first offer leaves the 24-hour window at 24h


def test_a_channel_cap_holds_only_its_channel() -> None:
    guard, policy, state = rails(channels=parse_channel_caps("email:1/day,web:2/hour")), Always(), CustomerState("c")
    assert guard.decide(policy, state, 0.0, {}, channel="email") is not None
    assert guard.decide(policy, state, HOUR, {}, channel="email") is None
    web = [guard.decide(policy, state, HOUR + n, {}, channel="web") is not None for n in range(3)]
    assert web == [True, True, False]
    assert guard.decide(policy, state, DAY, {}, channel="email") is not None


def test_the_record_stays_bounded() -> None:
    guard, policy, state = rails(per_day=5, channels=parse_channel_caps("email:2/week")), Always(), CustomerState("c")
    for n in range(1000):
        guard.decide(policy, state, n * HOUR, {}, channel="web" if n % 3 else "email")
    record = dict(state.learner_data[KEY])
    assert record and all(len(times) <= 5 for times in record.values())  # at most the largest cap per channel
    assert all(999 * HOUR - t < 7 * DAY for times in record.values() for t in times)  # none older than a week
    assert len(orjson.dumps(state.learner_data[KEY])) < 200


def test_no_caps_configured_keeps_no_record() -> None:
    guard, policy, state = rails(), Always(), CustomerState("c1")
    guard.decide(policy, state, 0.0, {}, channel="email")
    assert KEY not in state.learner_data


@pytest.mark.parametrize("bad", ["email", "email:one/day", "email:1/fortnight", "email:1/day,email:2/day"])
def test_bad_channel_caps_are_refused_with_the_reason(bad: str) -> None:
    with pytest.raises(ValueError, match="PERSO_CHANNEL_CAPS"):
        ModelSettings(channel_caps=bad)


def test_a_reminder_is_held_back_by_the_email_cap() -> None:
    from tests.helpers import T0, click
    from tests.models.triggers.test_abandoned_cart import event

    p = Personalizer(ModelSettings(triggers=["abandoned_cart"], cart_reminder_minutes=60, channel_caps="email:1/day"))
    state = CustomerState("c1")
    for n, item in enumerate(("tea", "mug")):
        p.process(state, event(click(kind="add_to_cart", item=item, category="home", price=3.0, at=T0.replace(
            minute=n))))
    outcome = p.catch_up(state, T0.timestamp() + 2 * HOUR)
    assert outcome is not None and [f.decision.item_id for f in outcome.moments] == ["tea"]  # mug: capped
