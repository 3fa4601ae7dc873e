"""From the counters an experiment's arms keep (one flat hash per arm, and per ghost arm of the holdout) to the
report's inputs: each arm's counts, and for each arm of another policy than the holdout's, the holdout's ghost
offers of that policy as the reference of its offer figures. An arm that runs one timed trigger and no policy of
its own (`none+abandoned_cart`) is compared with the holdout's ghost offers of that trigger (the reminded items
bought anyway).

>>> from schemas.experiments import ExperimentConfig
>>> config = ExperimentConfig.start("x", "holdout:20,nbo:40,popular:40", holdout_policy="nbo")
>>> stored = {"holdout": {"customers": "10", "converted_customers": "2"}, "nbo": {"customers": "20"},
...           "popular": {"customers": "20"}, "holdout@popular": {"converted_customers": "1", "offers": "30"}}
>>> arms, references = arm_counts(config, lambda arm: stored.get(arm, {}))
>>> [a.arm for a in arms], references["popular"].arm, references["popular"].customers
(['holdout', 'nbo', 'popular'], 'holdout@popular', 10)
>>> references["popular"].converted_customers
1
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from models.experiments.attribution import ghost_arm
from models.experiments.report import ArmCounts, FieldValue
from models.policies.none import NoOffer
from schemas.experiments import HOLDOUT, ExperimentConfig

# What a ghost arm counts of its own; the rest (customers, revenue, buyers) is the holdout's.
OFFER_FIELDS = ("offers", "converted_offers", "converted_customers", "attributed_revenue", "attributed_revenue_sq",
                "outcomes")


def ghost_arms(config: ExperimentConfig) -> list[str]:
    """The names of the holdout's ghost arms this experiment keeps counters for."""
    holdouts = [arm.name for arm in config.arms if arm.policy == HOLDOUT]
    policies = sorted({arm.policy for arm in config.arms if arm.policy not in (HOLDOUT, config.holdout_policy)}
                      | {trigger for arm in config.arms for trigger in arm.triggers})
    return [ghost_arm(holdout, policy) for holdout in holdouts[:1] for policy in policies]


Fields = Mapping[str, FieldValue] | Mapping[bytes, FieldValue]


def arm_counts(config: ExperimentConfig, fields_of: Callable[[str], Fields]
               ) -> tuple[list[ArmCounts], dict[str, ArmCounts]]:
    """(each arm's counts, {arm of another policy than the holdout's: its offer reference}); `fields_of(name)`
    gives the counters stored under an arm or ghost arm's name."""
    arms = [ArmCounts.from_fields(arm.name, arm.policy, arm.share / 100.0, fields_of(arm.name))
            for arm in config.arms]
    holdout = next((counts for counts in arms if counts.policy == HOLDOUT), None)
    references: dict[str, ArmCounts] = {}
    if holdout is None:
        return arms, references
    for counts, spec in zip(arms, config.arms, strict=True):
        if counts.policy == HOLDOUT:
            continue
        if spec.policy == NoOffer.name and len(spec.triggers) == 1:
            offered_by = spec.triggers[0]  # the trigger's offers are all the arm's
        elif counts.policy == config.holdout_policy:
            continue
        else:
            offered_by = counts.policy
        name = ghost_arm(holdout.arm, offered_by)
        ghost = ArmCounts.from_fields(name, HOLDOUT, holdout.share, fields_of(name))
        # Named as the ghost arm: a comparison of two arms' lifts finds their pair count by those names.
        references[counts.arm] = replace(holdout, arm=name, **{field: getattr(ghost, field) for field in OFFER_FIELDS})
    return arms, references
