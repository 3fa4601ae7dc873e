"""The OfferPolicy base: candidates in, one choice with its reason out.

A policy sees an `OfferRequest` (the customer's state, the moment, what the learners concluded for this
event, and the items the guardrails exclude) and returns a `Decision` or None. Whether an offer may go out
at all (frequency caps), what may never be offered (exclusions) and what is a resend (refresh) are the
Guardrails' job (models/policies/guardrails.py), not the policy's, so every policy is held to the same rules.

A new policy is one module: a subclass with `name`, `version` and `decide`, decorated with
`@register_policy`, and the module's name added to the import line in `models/policies/__init__.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from models.registry import Registry
from models.state import CustomerState

if TYPE_CHECKING:
    from models.learners.base import Learner
    from models.settings import ModelSettings

P = TypeVar("P", bound="OfferPolicy")


@dataclass(frozen=True)
class Decision:
    item_id: str
    category: str | None
    score: float
    reason: str
    probability: float = 1.0  # with which the policy chose this item (1: deterministic); off-policy evaluation
    # Of the chosen candidate, for a policy that learns from outcomes: its values packed as text
    # (models/learners/response.pack_values; a tuple of values in offers recorded before packing).
    features: str | tuple[float, ...] | None = None
    # Candidates not offered, (item, features), that a learning policy learns from by their implicit outcome (the
    # learned policy's are built when first read: see models/policies/learned.py, _Taught).
    examples: Sequence[tuple[str, tuple[float, ...]]] = ()


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs more, and this is built per event
class OfferRequest:
    state: CustomerState
    now_ts: float
    outputs: Mapping[str, Any]  # the learners' conclusions: segment, segment_label, propensity, ...
    excluded: set[str]  # never offer these now (the guardrails say)


class OfferPolicy(ABC):
    name: ClassVar[str]
    version: ClassVar[str]
    # True: the Personalizer keeps this policy's offers open for attribution even without an experiment, and
    # teaches the response learner what became of each (its decisions carry `features`).
    learns_from_outcomes: ClassVar[bool] = False
    # True: a reminder (models/triggers/) of what the customer looked at; the Guardrails then let the last item seen be.
    reminds: ClassVar[bool] = False

    @classmethod
    def from_settings(cls: type[P], settings: ModelSettings, learners: Mapping[str, Learner]) -> P:
        """Build from the models' settings and the configured learners (by name) the policy reads."""
        return cls()

    @abstractmethod
    def decide(self, request: OfferRequest) -> Decision | None:
        """The best offer for this customer now, or None."""

    def probabilities(self, request: OfferRequest) -> dict[str, float]:
        """The probability of each item `decide` may choose now (off-policy evaluation weighs logged offers by
        it). This default is a deterministic policy's: its one choice. An exploring policy says its own."""
        decision = self.decide(request)
        return {decision.item_id: 1.0} if decision is not None else {}


def epsilon_greedy_shares(pool: Sequence[str], best: str, epsilon: float) -> dict[str, float]:
    """Each item's probability under epsilon-greedy: with probability epsilon one item of `pool` drawn uniformly,
    else `best` (which is in the pool).

    >>> epsilon_greedy_shares(["a", "b"], "a", 0.2)
    {'a': 0.9, 'b': 0.1}
    """
    shares = dict.fromkeys(pool, epsilon / len(pool))
    shares[best] += 1 - epsilon
    return shares


def required_learner(learners: Mapping[str, Learner], name: str, policy: str) -> Any:
    """A learner a policy cannot work without, or a configuration error that says so."""
    learner = learners.get(name)
    if learner is None:
        raise ValueError(f"the {policy!r} policy needs the {name!r} learner: add it to PERSO_LEARNERS")
    return learner


POLICIES: Registry[OfferPolicy] = Registry("offer policy", "PERSO_POLICY")


def register_policy(cls: type[P]) -> type[P]:
    """Make a policy available by its name to the configuration (`PERSO_POLICY`)."""
    return POLICIES.register(cls)


def build_policy(name: str, settings: ModelSettings, learners: Mapping[str, Learner]) -> OfferPolicy:
    return POLICIES.lookup(name).from_settings(settings, learners)
