"""Which timed triggers run for which customer: the deployment's (`PERSO_TRIGGERS`), or the running experiment's.

Without an experiment every customer runs the deployment's triggers. An experiment whose arms name no trigger
runs the deployment's in every arm but the holdout; one whose arms name triggers (`nbo+abandoned_cart:50`) runs
exactly those in each arm. The holdout never sends one: it records every trigger the others run as ghost offers
(decided, never sent), so their lift is measured against what customers do anyway.

>>> from models.triggers.abandoned_cart import AbandonedCart
>>> from schemas.experiments import ExperimentConfig
>>> moments = Moments(["abandoned_cart"], lambda name: AbandonedCart())
>>> [t.name for t in moments.for_arm(None).send]
['abandoned_cart']
>>> moments.configure(ExperimentConfig.start("x", "holdout:20,a=nbo:40,b=nbo+abandoned_cart:40"))
>>> [([t.name for t in s.send], [t.name for t in s.ghost]) for s in moments.by_arm.values()]
[([], ['abandoned_cart']), ([], []), (['abandoned_cart'], [])]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from models.policies.base import OfferPolicy
from models.triggers.base import TriggerPolicy
from schemas.experiments import HOLDOUT, ArmSpec, ExperimentConfig


@dataclass(frozen=True)
class TriggerSet:
    send: tuple[TriggerPolicy, ...] = ()  # decided through the Guardrails and sent
    ghost: tuple[TriggerPolicy, ...] = ()  # decided and recorded for the holdout, never sent

    @cached_property
    def all(self) -> tuple[TriggerPolicy, ...]:
        return self.send + self.ghost

    @cached_property
    def observing(self) -> tuple[TriggerPolicy, ...]:
        """Those that follow events (called after every event: the others are skipped)."""
        return tuple(trigger for trigger in self.all if trigger.observes)


NONE = TriggerSet()


class Moments:
    def __init__(self, default: Sequence[str], build: Callable[[str], OfferPolicy]) -> None:
        self.default = tuple(dict.fromkeys(default))
        self._build = build
        self.triggers: dict[str, TriggerPolicy] = {}
        self.by_arm: dict[str, TriggerSet] = {}
        self.everyone = NONE
        self.configure(None)

    def trigger(self, name: str) -> TriggerPolicy:
        policy = self.triggers.get(name) or self._build(name)
        if not isinstance(policy, TriggerPolicy):
            raise ValueError(f"{name!r} is an offer policy, not a timed trigger (abandoned_cart, win_back ...)")
        return policy

    def configure(self, config: ExperimentConfig | None) -> None:
        """Run `config`'s triggers from now on (None: the deployment's for everyone). Raises ValueError for a name
        that is not a registered trigger."""
        named = [t for arm in config.arms for t in arm.triggers] if config is not None else []
        names = list(dict.fromkeys(named)) or list(self.default)
        triggers = {name: self.trigger(name) for name in names}
        self.triggers = triggers
        everything = tuple(triggers.values())
        self.everyone = TriggerSet(everything)
        self.by_arm = {arm.name: self._set_of(arm, everything, bool(named)) for arm in config.arms} if config else {}

    def _set_of(self, arm: ArmSpec, everything: tuple[TriggerPolicy, ...], named: bool) -> TriggerSet:
        if arm.policy == HOLDOUT:
            return TriggerSet(ghost=everything)
        if named:
            return TriggerSet(tuple(self.triggers[name] for name in arm.triggers))
        return TriggerSet(everything)

    def for_arm(self, arm: ArmSpec | None) -> TriggerSet:
        return self.everyone if arm is None else self.by_arm.get(arm.name, NONE)

    @property
    def any(self) -> bool:
        return bool(self.triggers)
