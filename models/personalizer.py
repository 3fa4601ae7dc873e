"""One event in, updated customer state and perhaps a next-best-offer out. No I/O here.

The Personalizer is an ordered list of learners and one offer policy held to the guardrails, all built from
the models' settings (`PERSO_LEARNERS`, `PERSO_POLICY`, and the learners' own settings).

>>> from schemas.events import parse_event
>>> from models.state import CustomerState
>>> def view(customer: str, item: str) -> ClickEvent:
...     return parse_event("clickstream", ('{"event_id": "%s-%s", "type": "view", "customer_id": "%s", '
...         '"session_id": "s1", "ts": "2026-01-05T12:00:00+00:00", "item_id": "%s", "category": "books", '
...         '"price": 12.0}' % (customer, item, customer, item)).encode())
>>> personalizer = Personalizer(ModelSettings())
>>> _ = personalizer.process(CustomerState("c0"), view("c0", "boo-001"))
>>> state = CustomerState("c1")
>>> outcome = personalizer.process(state, view("c1", "boo-002"))
>>> state.views, outcome.segment is not None, outcome.propensity  # 0.5: nothing learned yet
(1, True, 0.5)
>>> outcome.decision.item_id, outcome.decision.reason  # what others look at in c1's favourite category
('boo-001', 'popular in books, one of your top categories')
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from models.features import FeatureSpace
from models.learners import EventContext, Learner, TimeContext, build_learners
from models.policies import Decision, Guardrails, OfferPolicy, build_policy
from models.settings import ModelSettings
from models.state import CustomerState
from schemas.events import ClickEvent, PurchaseEvent


@dataclass
class Outcome:
    """What one event produced: the learners' outputs for the customer and the offer decided, if any."""

    outputs: dict[str, Any]
    decision: Decision | None

    @property
    def segment(self) -> int | None:
        return self.outputs.get("segment")

    @property
    def segment_label(self) -> str | None:
        return self.outputs.get("segment_label")

    @property
    def propensity(self) -> float | None:
        return self.outputs.get("propensity")


class Personalizer:
    def __init__(self, settings: ModelSettings | None = None) -> None:
        self.settings = settings or ModelSettings()
        import_plugins(self.settings.plugins)
        self.space = FeatureSpace()
        self.learners: list[Learner] = build_learners(self.settings)
        self.guardrails = Guardrails.from_settings(self.settings)
        self.policy: OfferPolicy = build_policy(self.settings.policy, self.settings, self.learners_by_name)
        self._refresh_hooks()

    @property
    def learners_by_name(self) -> dict[str, Learner]:
        return {learner.name: learner for learner in self.learners}

    def learner(self, name: str) -> Learner:
        """The configured learner of that name (KeyError if it is not configured)."""
        return self.learners_by_name[name]

    def replace_learners(self, learners: Iterable[Learner]) -> None:
        """Swap in learners (restored from a checkpoint); the policy is rebuilt on them."""
        self.learners = list(learners)
        self.policy = build_policy(self.settings.policy, self.settings, self.learners_by_name)
        self._refresh_hooks()

    def _refresh_hooks(self) -> None:
        # Only learners that override a hook are called for it (calls per event saved).
        self._before = [learner for learner in self.learners
                        if type(learner).observe_before is not Learner.observe_before]
        self._waking = [learner for learner in self.learners if type(learner).next_wake is not Learner.next_wake]

    def process(self, state: CustomerState, event: ClickEvent | PurchaseEvent) -> Outcome:
        """Apply one new event to `state` (mutated in place); the caller has removed duplicates."""
        ctx = EventContext(ts=event.epoch, state=state, space=self.space, event=event)
        for learner in self._before:
            learner.observe_before(ctx)
        state.update(event)
        self.space.note(event)
        for learner in self.learners:
            learner.learn_one(ctx)
        decision = self.guardrails.decide(self.policy, state, ctx.ts, ctx.outputs)
        self._schedule(state, max(ctx.ts, state.scored_ts))
        return Outcome(ctx.outputs, decision)

    def tick(self, state: CustomerState, now_ts: float) -> Outcome:
        """A timer's visit to a customer at stream time `now_ts`, without an event: learners settle what time has
        settled and the scores are re-computed as of now. Never called with now_ts before the customer's last
        event (the stream's clock only moves forward)."""
        ctx = TimeContext(ts=now_ts, state=state, space=self.space)
        for learner in self.learners:
            learner.learn_time(ctx)
        self._schedule(state, now_ts)
        return Outcome(ctx.outputs, None)

    def catch_up(self, state: CustomerState, until_ts: float, max_visits: int = 64) -> Outcome | None:
        """Every visit the customer is due up to stream time `until_ts`, each at its own time (as an offline
        replay of the timeline would make them), then the scores as of `until_ts`: what the profile shows.
        None when nothing was due. The worker calls this for the due customers of a partition."""
        visits = 0
        while state.wake_ts is not None and state.wake_ts <= until_ts and visits < max_visits:
            self.tick(state, max(state.wake_ts, state.last_event_ts))
            visits += 1
        if not visits:
            return None
        state.scored_ts = max(state.scored_ts, until_ts)
        return Outcome(self.scores(state, until_ts), None)

    def explain(self, state: CustomerState, now_ts: float) -> dict[str, str]:
        """Each learner's reasons for what it says of the customer as of `now_ts`, in words (for the profile)."""
        reasons: dict[str, str] = {}
        for learner in self.learners:
            reasons.update(learner.explain(state, now_ts))
        return reasons

    def scores(self, state: CustomerState, now_ts: float) -> dict[str, Any]:
        """What every learner says of the customer as of `now_ts`, learning nothing (how a campaign scores its
        customer base on a given day)."""
        outputs: dict[str, Any] = {}
        for learner in self.learners:
            outputs.update(learner.predict(state, now_ts))
        return outputs

    def _schedule(self, state: CustomerState, now_ts: float) -> None:
        """When the customer is next due a visit: re-scored after a while (longer as their silence grows) or
        sooner if a learner needs it (a label whose horizon passes)."""
        state.scored_ts = now_ts
        silence = max(0.0, now_ts - state.last_event_ts)
        wake = now_ts + max(self.settings.rescore_min_s, self.settings.rescore_silence_fraction * silence)
        for learner in self._waking:
            due = learner.next_wake(state)
            if due is not None and due < wake:
                wake = max(due, now_ts)
        state.wake_ts = wake

    def model_versions(self) -> dict[str, str]:
        versions = {learner.name: learner.version_tag for learner in self.learners}
        versions["decision"] = self.policy.version
        return versions

    def metrics(self) -> dict[str, dict[str, float]]:
        """Each learner's own figures, by learner name."""
        return {learner.name: learner.metrics() for learner in self.learners}


def import_plugins(modules: Iterable[str]) -> None:
    """Import modules whose import registers more learners or policies (`PERSO_PLUGINS`)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ValueError(f"cannot import plugin module {module!r} named in PERSO_PLUGINS: {error}") from error
