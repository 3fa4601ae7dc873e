"""The experiment the worker runs now: each customer's arm and the policy that decides for it.

The holdout arm decides with the deployment's own policy (`PERSO_POLICY`), and the offer is recorded but never
sent: how often customers buy those very items anyway is the baseline every lift is measured against. For each
other policy an arm runs, the holdout also records what that policy would have offered at the same moments (a
ghost offer, never sent, counted under `{holdout}@{policy}`), so that arm's conversions compare with the same
policy's items bought anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from models.experiments.assignment import ArmAssignment
from models.policies import POLICIES, OfferPolicy
from models.triggers import TriggerPolicy
from schemas.experiments import HOLDOUT, ArmSpec, ExperimentConfig


def check_policies(config: ExperimentConfig) -> None:
    """Raise ValueError naming an arm whose policy or trigger is not registered (before the experiment is stored)."""
    triggers = sorted(name for name, cls in POLICIES.items() if issubclass(cls, TriggerPolicy))
    policies = sorted(name for name in POLICIES if name not in triggers)
    for arm in config.arms:
        if arm.policy != HOLDOUT and arm.policy not in policies:
            hint = f" (a trigger: write nbo+{arm.policy})" if arm.policy in triggers else ""
            raise ValueError(f"arm {arm.name!r}: unknown policy {arm.policy!r}{hint}; registered: holdout, "
                             f"{', '.join(policies)}")
        for name in arm.triggers:
            if name not in triggers:
                raise ValueError(f"arm {arm.name!r}: unknown trigger {name!r}; registered: {', '.join(triggers)}")


class RunningExperiment:
    def __init__(self, config: ExperimentConfig, default_policy: OfferPolicy,
                 build: Callable[[str], OfferPolicy]) -> None:
        check_policies(config)
        self.config = config
        self.name = config.name
        self.assignment = ArmAssignment(config)
        self.policies: Mapping[str, OfferPolicy] = {
            arm.name: default_policy if arm.policy in (HOLDOUT, default_policy.name) else build(arm.policy)
            for arm in config.arms}
        # policy name -> the policy, for every published arm whose policy is not the holdout's own
        self.ghosts: Mapping[str, OfferPolicy] = {
            arm.policy: self.policies[arm.name] for arm in config.arms
            if arm.policy not in (HOLDOUT, default_policy.name)}

    def arm_of(self, customer_id: str) -> ArmSpec:
        return self.assignment.arm_of(customer_id)

    def policy_of(self, arm: ArmSpec) -> OfferPolicy:
        return self.policies[arm.name]
