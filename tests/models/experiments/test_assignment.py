from __future__ import annotations

import pytest
from scipy import stats

from models.experiments.assignment import ArmAssignment
from schemas.experiments import ExperimentConfig


def test_arms_come_in_their_shares_and_stay_put() -> None:
    config = ExperimentConfig.start("x", "holdout:10,nbo:45,popular:45", salt="s")
    arms = ArmAssignment(config)
    names = [arms.arm_of(f"c{n}").name for n in range(20_000)]
    counts = [names.count(arm) for arm in ("holdout", "nbo", "popular")]
    assert stats.chisquare(counts, [2_000, 9_000, 9_000]).pvalue > 0.001
    assert names == [ArmAssignment(config).arm_of(f"c{n}").name for n in range(20_000)]  # another worker agrees


def test_a_new_salt_reshuffles_customers() -> None:
    first = ArmAssignment(ExperimentConfig.start("x", "a=nbo:50,b=nbo:50", salt="one"))
    second = ArmAssignment(ExperimentConfig.start("y", "a=nbo:50,b=nbo:50", salt="two"))
    same = sum(first.arm_of(f"c{n}").name == second.arm_of(f"c{n}").name for n in range(10_000))
    assert 4_700 < same < 5_300


@pytest.mark.parametrize(("arms", "message"), [
    ("holdout:10,nbo:80", "add up to 90%"),
    ("nbo:50,nbo:50", "share a name"),
    ("nbo", "has no share"),
    ("nbo:half", "not a number"),
])
def test_bad_arm_lists_get_clear_errors(arms: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ExperimentConfig.start("x", arms)


def test_an_arm_naming_an_unknown_policy_is_refused_before_it_is_stored() -> None:
    from models.experiments.running import check_policies

    with pytest.raises(ValueError, match="unknown policy 'bandit'; registered: holdout, "):
        check_policies(ExperimentConfig.start("x", "holdout:10,bandit:90"))
