"""The experiment statistics, tested statistically with the closed-loop simulator (streams/devstack/simulate.py):
A/A experiments, coverage of the planted true lift over many seeds, and significance in the default simulation.

Every run goes through the worker's own batch pipeline, attribution and report. The small runs use only the
learners the `nbo` policy needs (co-occurrence and segments): the statistics do not depend on propensity, and
the runs are five times faster. Runs are spread over two processes (this machine has two cores).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ProcessPoolExecutor

from models.settings import ModelSettings
from streams.devstack.simulate import simulate, true_lift

SEEDS = range(1, 101)
DAYS, CUSTOMERS = 7, 150


def _light() -> ModelSettings:
    return ModelSettings(learners=["cooccurrence", "segments"], rescore_min_s=7 * 86_400)


def _aa_significant(seed: int) -> bool:
    result = asyncio.run(simulate(DAYS, CUSTOMERS, "a=nbo:50,b=nbo:50", seed, _light()))
    lift = result.report.arm("b").conversion_lift
    assert lift is not None
    return lift.significant


def _covers_truth(seed: int) -> tuple[bool, float, float]:
    result = asyncio.run(simulate(DAYS, CUSTOMERS, "holdout:50,nbo:50", seed, _light()))
    _, truth = asyncio.run(true_lift("nbo", DAYS, CUSTOMERS, seed, _light()))
    lift = result.report.arm("nbo").conversion_lift
    assert lift is not None and lift.interval is not None and lift.estimate is not None
    low, high = lift.interval
    return low <= truth <= high, lift.estimate, truth


def test_aa_experiments_find_a_difference_at_most_as_often_as_the_level_says() -> None:
    with ProcessPoolExecutor(2) as pool:
        significant = sum(pool.map(_aa_significant, SEEDS))
    print(f"A/A: {significant} of {len(SEEDS)} significant at 5%")
    assert significant <= 10


def test_the_lift_interval_covers_the_planted_true_lift() -> None:
    with ProcessPoolExecutor(2) as pool:
        runs = list(pool.map(_covers_truth, SEEDS))
    covered = sum(hit for hit, _, _ in runs)
    mean_estimate = sum(e for _, e, _ in runs) / len(runs)
    mean_truth = sum(t for _, _, t in runs) / len(runs)
    print(f"coverage: {covered} of {len(runs)}; mean estimate {mean_estimate:+.4f}, mean true lift {mean_truth:+.4f}")
    assert covered >= 90


def test_the_default_simulation_finds_nbo_s_lift_over_the_holdout() -> None:
    result = asyncio.run(simulate())  # 30 days, 2,000 customers, holdout:10,nbo:45,popular:45, every learner
    nbo = result.report.arm("nbo")
    assert nbo.conversion_lift is not None and nbo.conversion_lift.significant
    assert nbo.conversion_lift.estimate is not None and nbo.conversion_lift.estimate > 0
    assert result.report.srm_warning is False
