"""The Learner base: one online model of the Personalizer, fed one event at a time as River's estimators are.

A learner sees each event at most twice: `observe_before` (optional) before the event is folded into the
customer's state, then `learn_one` after it, in the order the configuration lists the learners. What it
concludes for this customer that others need (a segment, a propensity) it writes into `ctx.outputs`; the
offer policy and the profile read it there. Its checkpoint is its pickled self (derived caches left out by
`__getstate__`), restored only into a learner of the same name and version.

Time passes for customers without events too: a learner can ask for a visit (`next_wake`), learns at it and
writes its outputs as of then (`learn_time`, e.g. a label that settles because its horizon passed), and says
what it concludes about a customer at any moment (`predict`, pure: the profile's scores as of a given time).

A new learner is one module: a subclass with `name`, `version` and `learn_one`, decorated with
`@register_learner`, and the module's name added to the import line in `models/learners/__init__.py`.

>>> @register_learner
... class EventCounter(Learner):
...     name, version = "doc-counter", "count-1"
...     def learn_one(self, ctx: EventContext) -> None:
...         self.n_learned += 1
...         ctx.outputs["events_seen"] = self.n_learned
>>> LEARNERS["doc-counter"] is EventCounter
True
>>> del LEARNERS["doc-counter"]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from models.features import FeatureSpace, behaviour_features
from models.registry import Registry
from models.state import CustomerState
from schemas.events import ClickEvent, PurchaseEvent

if TYPE_CHECKING:
    from models.settings import ModelSettings

L = TypeVar("L", bound="Learner")


@dataclass(slots=True)
class TimeContext:
    """A customer at a moment: the state, the feature space, and the outputs learners conclude for it
    (`segment`, `segment_label`, `propensity`, ...). Without an event: a timer's visit."""

    ts: float
    state: CustomerState
    space: FeatureSpace
    outputs: dict[str, Any] = field(default_factory=dict)
    _x: dict[str, float] | None = None
    _behaviour: dict[str, float] | None = None

    @property
    def is_purchase(self) -> bool:
        return False

    @property
    def x(self) -> dict[str, float]:
        """The customer's features (the segment space) at this moment, computed once, on first use."""
        if self._x is None:
            self._x = self.space.features(self.state, self.ts)
        return self._x

    @property
    def behaviour(self) -> dict[str, float]:
        """The customer's behaviour features at this moment (models/features.py), computed once."""
        if self._behaviour is None:
            self._behaviour = behaviour_features(self.state, self.ts)
        return self._behaviour


@dataclass(slots=True)
class EventContext(TimeContext):
    """One event on its way through the learners."""

    event: ClickEvent | PurchaseEvent = field(default=None)  # type: ignore[assignment]  # always given

    @property
    def is_purchase(self) -> bool:
        return isinstance(self.event, PurchaseEvent)


class Learner(ABC):
    name: ClassVar[str]
    version: ClassVar[str]
    n_learned: int = 0

    @classmethod
    def from_settings(cls: type[L], settings: ModelSettings) -> L:
        """Build from the models' settings; a learner that has none is built with its defaults."""
        return cls()

    def observe_before(self, ctx: EventContext) -> None:  # noqa: B027 - optional hook, nothing by default
        """Called before the event is folded into `ctx.state` (for labels that must see the state as it was)."""

    @abstractmethod
    def learn_one(self, ctx: EventContext) -> None:
        """Learn from one event already folded into `ctx.state`; write conclusions into `ctx.outputs`."""

    def learn_time(self, ctx: TimeContext) -> None:
        """A timer's visit to the customer (no event): learn what the passing of time settled, and write what
        this learner says of the customer as of `ctx.ts` into `ctx.outputs` (by default: `predict`)."""
        ctx.outputs.update(self.predict(ctx.state, ctx.ts))

    def predict(self, state: CustomerState, now_ts: float) -> dict[str, Any]:
        """What this learner says of the customer as of `now_ts`, without learning (the profile's view)."""
        return {}

    def reconfigure(self, configured: Learner) -> None:  # noqa: B027 - optional hook, nothing by default
        """Restored from a checkpoint: take the settings of `configured` (the learner built from today's settings)
        that can change without forgetting what was learned. By default none: the checkpoint's stand."""

    def explain(self, state: CustomerState, now_ts: float) -> dict[str, str]:
        """Why this learner says what it says of the customer, in words (for the profile; not per event)."""
        return {}

    def next_wake(self, state: CustomerState) -> float | None:
        """When this learner needs the customer visited without an event (None: it does not)."""
        return None

    def metrics(self) -> dict[str, float]:
        """Figures the worker publishes about this learner (in `/metrics` and `perso status`)."""
        return {}

    def drop_caches(self) -> None:  # noqa: B027 - optional hook, nothing by default
        """Forget what is derived from the learned state to save time (what a checkpoint leaves out).

        A restored learner starts with none; dropping them here makes a learner continue exactly like its
        restored copy, which is how the checks prove a checkpoint loses nothing that was learned."""

    @property
    def version_tag(self) -> str:
        return f"{self.version}@{self.n_learned}"


LEARNERS: Registry[Learner] = Registry("learner", "PERSO_LEARNERS")


def register_learner(cls: type[L]) -> type[L]:
    """Make a learner available by its name to the configuration (`PERSO_LEARNERS`)."""
    return LEARNERS.register(cls)


def build_learners(settings: ModelSettings) -> list[Learner]:
    if len(set(settings.learners)) != len(settings.learners):
        raise ValueError(f"PERSO_LEARNERS names a learner twice: {settings.learners}")
    return [LEARNERS.lookup(name).from_settings(settings) for name in settings.learners]
