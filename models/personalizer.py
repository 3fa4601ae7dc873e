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
from models.learners import EventContext, Learner, build_learners
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
        # Only learners that override observe_before are called before the update (a call per event saved).
        self._before = [learner for learner in self.learners
                        if type(learner).observe_before is not Learner.observe_before]

    def process(self, state: CustomerState, event: ClickEvent | PurchaseEvent) -> Outcome:
        """Apply one new event to `state` (mutated in place); the caller has removed duplicates."""
        ctx = EventContext(event, event.epoch, state, self.space)
        for learner in self._before:
            learner.observe_before(ctx)
        state.update(event)
        self.space.note(event)
        for learner in self.learners:
            learner.learn_one(ctx)
        return Outcome(ctx.outputs, self.guardrails.decide(self.policy, state, ctx.ts, ctx.outputs))

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
