"""Experiment arms that run timed triggers: the syntax, the checks, and the holdout's ghost reference."""

from __future__ import annotations

import pytest

from models.experiments.counts import arm_counts, ghost_arms
from models.experiments.running import check_policies
from schemas.experiments import ExperimentConfig


def test_an_arm_names_its_policy_and_triggers() -> None:
    config = ExperimentConfig.start("x", "holdout:20,nbo+abandoned_cart:40,b=none+abandoned_cart+win_back:40")
    assert [(a.name, a.policy, a.triggers) for a in config.arms] == [
        ("holdout", "holdout", ()), ("nbo-abandoned_cart", "nbo", ("abandoned_cart",)),
        ("b", "none", ("abandoned_cart", "win_back"))]
    check_policies(config)
    assert ghost_arms(config) == ["holdout@abandoned_cart", "holdout@none", "holdout@win_back"]


@pytest.mark.parametrize(("arms", "message"), [
    ("holdout:50,nbo+cart:50", "unknown trigger 'cart'"),
    ("holdout:50,abandoned_cart:50", "a trigger: write nbo\\+abandoned_cart"),
    ("holdout:50,nbo+popular:50", "unknown trigger 'popular'"),
])
def test_a_wrong_arm_is_refused_with_the_reason(arms: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_policies(ExperimentConfig.start("x", arms))


def test_the_holdout_cannot_run_a_trigger() -> None:
    with pytest.raises(ValueError, match="the holdout sends nothing"):
        ExperimentConfig.start("x", "holdout+abandoned_cart:50,nbo:50")


def test_a_trigger_only_arm_is_compared_with_the_holdouts_ghost_reminders() -> None:
    config = ExperimentConfig.start("x", "holdout:50,b=none+abandoned_cart:50", holdout_policy="nbo")
    stored = {"holdout": {"customers": "100", "converted_customers": "60", "offers": "900"},
              "holdout@abandoned_cart": {"offers": "80", "converted_customers": "7"},
              "b": {"customers": "100", "converted_customers": "40", "offers": "90"}}
    _, references = arm_counts(config, lambda arm: stored.get(arm, {}))
    reference = references["b"]
    assert (reference.customers, reference.offers, reference.converted_customers) == (100, 80, 7)
