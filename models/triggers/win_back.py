"""Win-back: a customer with no event for `PERSO_WINBACK_DAYS` whose churn risk is at least
`PERSO_WINBACK_MIN_CHURN` gets one offer: their best candidate by the deployment's policy (`PERSO_POLICY`).

A lapse episode starts at the customer's last event; their next event ends it. The moment is due `winback_days`
after the last event; if the churn risk is below the threshold then (or the Guardrails hold the offer back), it is
checked again every `RECHECK_DAYS` of the same silence. Kept per customer: `(last event time of the lapse, next
check time or None once sent)`.

>>> from models.policies.base import OfferPolicy
>>> class Tea(OfferPolicy):
...     name, version = "tea", "tea-1"
...     def decide(self, request: OfferRequest) -> Decision:
...         return Decision("tea", "grocery", 1.0, "popular in grocery")
>>> back, state = WinBack(Tea(), days=30, min_churn=0.7), CustomerState("c1", events=3, last_event_ts=0.0)
>>> moment = back.due(state)
>>> moment.key, moment.due_ts / DAY
('winback:0', 30.0)
>>> back.decide(OfferRequest(state, moment.due_ts, {"churn_risk": 0.5}, set())) is None
True
>>> back.decide(OfferRequest(state, moment.due_ts, {"churn_risk": 0.9}, set())).reason
'we miss you: popular in grocery'
"""

from __future__ import annotations

from collections.abc import Mapping

from models.learners.base import Learner
from models.policies.base import Decision, OfferPolicy, OfferRequest, build_policy, register_policy
from models.settings import ModelSettings
from models.state import DAY, CustomerState
from models.triggers.base import Moment, TriggerPolicy
from schemas.events import InputEvent

RECHECK_DAYS = 7.0


@register_policy
class WinBack(TriggerPolicy):
    name = "win_back"
    version = "win-back-1"
    reminds = False  # an ordinary offer: the usual exclusions hold
    observes = False  # the lapse is measured from state.last_event_ts

    def __init__(self, default: OfferPolicy, days: float = 30.0, min_churn: float = 0.7) -> None:
        self.default = default
        self.lapse_s = days * DAY
        self.min_churn = min_churn

    @classmethod
    def from_settings(cls, settings: ModelSettings, learners: Mapping[str, Learner]) -> WinBack:
        if "churn" not in learners:
            raise ValueError("the 'win_back' trigger needs the 'churn' learner: add it to PERSO_LEARNERS")
        return cls(build_policy(settings.policy, settings, learners), settings.winback_days,
                   settings.winback_min_churn)

    def observe(self, state: CustomerState, event: InputEvent) -> None:
        """Nothing to follow: the lapse is measured from `state.last_event_ts`."""

    def due(self, state: CustomerState) -> Moment | None:
        if not state.events:
            return None
        anchor = state.last_event_ts
        key = f"winback:{round(anchor * 1000)}"
        kept = state.learner_data.get(self.name)
        if kept is None or kept[0] != anchor:
            return Moment(key, anchor + self.lapse_s)
        return Moment(key, kept[1]) if kept[1] is not None else None

    def next_due(self, state: CustomerState) -> float | None:
        if not state.events:
            return None
        kept = state.learner_data.get(self.name)
        return state.last_event_ts + self.lapse_s if kept is None or kept[0] != state.last_event_ts else kept[1]

    def decide(self, request: OfferRequest) -> Decision | None:
        churn = request.outputs.get("churn_risk")
        if churn is None or churn < self.min_churn:
            return None
        decision = self.default.decide(request)
        if decision is None:
            return None
        return Decision(decision.item_id, decision.category, decision.score, f"we miss you: {decision.reason}",
                        decision.probability)

    def spend(self, state: CustomerState, moment: Moment, now_ts: float, decided: bool) -> None:
        state.learner_data[self.name] = (state.last_event_ts, None if decided else now_ts + RECHECK_DAYS * DAY)
