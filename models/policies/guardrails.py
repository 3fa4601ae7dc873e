"""The rules every offer policy is held to: how often a customer may get an offer, what is never offered, and
when the same offer again is a resend rather than news.

Checks never change the state; `record` is the one place an offer is written to it.

>>> from models.state import CustomerState
>>> rails = Guardrails(cap_per_hour=1, refresh_s=600, exclude_days=30)
>>> state = CustomerState("c1")
>>> rails.permits(state, now_ts=1000.0)
True
>>> rails.record(state, Decision("tea", "grocery", 1.0, "popular right now"), now_ts=1000.0)
>>> rails.permits(state, now_ts=1060.0), rails.permits(state, now_ts=4700.0)
(False, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import TYPE_CHECKING, Any

from models.policies.base import Decision, OfferPolicy, OfferRequest
from models.policies.caps import OfferCaps, parse_channel_caps
from models.policies.exclusions import OnlyAmong
from models.settings import ModelSettings
from models.state import CustomerState

if TYPE_CHECKING:
    from models.promotions import Promotions
    from models.rules import RuleSet

CAP_WINDOW_S = 3600.0
# The channel of an offer that follows the customer's own event (timed triggers send on their own, e.g. email).
DEFAULT_CHANNEL = "web"


class Guardrails:
    # The deployment's rules (models/rules/), set by the Personalizer; None: no rules, as before there were any.
    rules: RuleSet | None = None
    # Promotions (models/promotions.py), set by the Personalizer when configured.
    promotions: Promotions | None = None

    def __init__(self, cap_per_hour: int = 4, refresh_s: float = 600.0, exclude_days: float = 30.0,
                 caps: OfferCaps | None = None) -> None:
        self.cap_per_hour = cap_per_hour
        self.refresh_s = refresh_s
        self.exclude_days = exclude_days
        self.caps = caps or OfferCaps()  # per day and per channel

    @classmethod
    def from_settings(cls, settings: ModelSettings) -> Guardrails:
        return cls(cap_per_hour=settings.offer_cap_per_hour, refresh_s=settings.offer_refresh_s,
                   exclude_days=settings.exclude_bought_days,
                   caps=OfferCaps(settings.offer_cap_per_day, parse_channel_caps(settings.channel_caps)))

    def decide(self, policy: OfferPolicy, state: CustomerState, now_ts: float, outputs: Mapping[str, Any],
               rules: RuleSet | None = None, *, channel: str = DEFAULT_CHANNEL, record: bool = True
               ) -> Decision | None:
        """The policy's choice held to these rules, recorded on the state when it goes out on `channel`. `rules`: an
        experiment arm's rule set (the deployment's and the arm's), instead of the deployment's. `record` False: a
        holdout's ghost, decided under the same rules but never sent, so not counted."""
        if not self.permits(state, now_ts, channel):
            return None
        decision = self.choose(policy, state, now_ts, outputs, rules)
        if self.promotions is not None and not policy.reminds:  # a reminder is of its own item: never replaced
            decision = self.promotions.apply(self, policy, state, now_ts, outputs, rules, decision)
        if decision is None or self.repeats(state, decision, now_ts):
            return None
        if record:
            self.record(state, decision, now_ts, channel)
        return decision

    def choose(self, policy: OfferPolicy, state: CustomerState, now_ts: float, outputs: Mapping[str, Any],
               rules: RuleSet | None = None, only: Set[str] | None = None) -> Decision | None:
        """What the policy offers now among the items neither excluded nor refused by the rules (no cap, no
        refresh: also what a holdout's ghost would have been offered); `only`: and among these items alone."""
        request = OfferRequest(state, now_ts, outputs, self.excluded(state, now_ts, policy.reminds))
        rules = rules if rules is not None else self.rules
        if rules is not None:
            return rules.choose(policy, request, only)
        if only is not None:
            request.excluded = OnlyAmong(request.excluded, only)
        return policy.decide(request)

    def permits(self, state: CustomerState, now_ts: float, channel: str = DEFAULT_CHANNEL) -> bool:
        """Below the frequency cap (fewer than `cap_per_hour` offers in the last hour of event time) and the
        daily and channel caps (models/policies/caps.py)."""
        recent = sum(1 for t in state.offer_times if now_ts - t < CAP_WINDOW_S)
        return recent < self.cap_per_hour and self.caps.permits(state, channel, now_ts)

    def excluded(self, state: CustomerState, now_ts: float, reminder: bool = False) -> set[str]:
        """Never offered now: what the customer bought within `exclude_days` (0: nothing is excluded for having
        been bought, the order just placed included: groceries are bought again), and the item they just looked at
        (unless the offer is a `reminder` of it: a trigger's, models/triggers/). After an order, its last line is
        not "looked at": what was bought is the exclusion window's to decide.

        >>> from models.state import CustomerState
        >>> state = CustomerState("c1", recent_items=["tea"], last_event_type="purchase",
        ...                       recent_purchases=[("tea", 100.0)])
        >>> Guardrails(exclude_days=30).excluded(state, 100.0), Guardrails(exclude_days=0).excluded(state, 100.0)
        ({'tea'}, set())
        """
        excluded = state.bought_within(now_ts, self.exclude_days) if self.exclude_days > 0 else set()
        if not reminder and state.last_event_type != "purchase":
            excluded.update(state.recent_items[-1:])
        return excluded

    def repeats(self, state: CustomerState, decision: Decision, now_ts: float) -> bool:
        """The same item as the last offer, sooner than `refresh_s`: nothing relevant changed, send nothing."""
        last = state.last_offer
        if not last or last.get("item_id") != decision.item_id:
            return False
        return now_ts - float(last.get("ts", 0)) < self.refresh_s

    def record(self, state: CustomerState, decision: Decision, now_ts: float, channel: str = DEFAULT_CHANNEL
               ) -> None:
        """The offer goes out: remember it as the customer's last, and count it against the caps."""
        state.last_offer = {"item_id": decision.item_id, "score": decision.score, "reason": decision.reason,
                            "ts": now_ts}
        state.offer_times = [t for t in state.offer_times if now_ts - t < CAP_WINDOW_S] + [now_ts]
        self.caps.record(state, channel, now_ts)
