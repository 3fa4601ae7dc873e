"""The TriggerPolicy base: an offer policy that a moment in time calls on, not an event.

A trigger follows the customer's events (`observe`) to know when its moment comes (`due`: an episode id and the
stream time it is due at); a timer's visit at or after that time asks it to `decide` through the Guardrails like
any policy, then `spend`s the episode whatever the Guardrails said, so each episode gets one decision at most.
What a trigger keeps per customer is one small immutable value in `state.learner_data[name]`.

A new trigger is one module in models/triggers/: a subclass with `name`, `version`, `observe`, `due`, `spend`
and `decide`, decorated with `@register_policy` (it is a named policy: PERSO_TRIGGERS and experiment arms name it).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from models.policies.base import Decision, OfferPolicy
from models.state import CustomerState
from schemas.events import InputEvent

# Where trigger offers go unless a trigger says otherwise: they reach a customer who is not on the site.
TRIGGER_CHANNEL = "email"


@dataclass(frozen=True, slots=True)
class Moment:
    """One episode's moment: `key` makes the offer id (`{customer}:{key}`, the same on every re-run), `due_ts` the
    stream time it is due at."""

    key: str
    due_ts: float


@dataclass(frozen=True, slots=True)
class Fired:
    """A trigger's decision at a visit: the offer to send (or, `published` False, the holdout's ghost)."""

    trigger: str
    key: str
    ts: float  # the stream time it was decided at
    decision: Decision
    channel: str
    published: bool
    experiment: str | None = None
    arm: str | None = None
    expires_ts: float | None = None
    version: str | None = None  # of the trigger that decided


class TriggerPolicy(OfferPolicy):
    channel: ClassVar[str] = TRIGGER_CHANNEL
    # A reminder offers what the customer just looked at: the Guardrails do not exclude the last item seen.
    reminds: ClassVar[bool] = True
    observes: ClassVar[bool] = True  # False: `observe` does nothing (not called after each event)

    @abstractmethod
    def observe(self, state: CustomerState, event: InputEvent) -> None:
        """Follow one applied event (after `state.update`): open or close episodes."""

    @abstractmethod
    def due(self, state: CustomerState) -> Moment | None:
        """The customer's next moment for this trigger, or None."""

    def next_due(self, state: CustomerState) -> float | None:
        """When `due` is, without building its moment: called after every event (the wake time), so kept cheap."""
        moment = self.due(state)
        return moment.due_ts if moment is not None else None

    @abstractmethod
    def spend(self, state: CustomerState, moment: Moment, now_ts: float, decided: bool) -> None:
        """The moment was decided at `now_ts` (`decided`: an offer came of it): never due again this episode."""
