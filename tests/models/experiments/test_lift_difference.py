"""The difference of two arms' lifts, each against the holdout's ghost offers of its own policy: its interval
covers a planted difference as often as it says, the holdout's pairing is what narrows it, and an A/A comparison
is significant as often as alpha."""

from __future__ import annotations

import numpy as np
import pytest

from models.experiments.lifts import lift_difference

RUNS = 2_000


def planted(rng: np.random.Generator, a: float, b: float, joint: tuple[float, float, float, float],
            customers: int, holdout: int) -> tuple[int, int, int, int, int, int, int]:
    """One experiment: arms A and B convert at rates a and b; each holdout customer converts under A's ghost
    offers, B's, both or neither with the `joint` probabilities (both, A only, B only, neither)."""
    both, only_a, only_b, _ = rng.multinomial(holdout, joint)
    return (int(rng.binomial(customers, a)), customers, int(both + only_a), int(rng.binomial(customers, b)),
            customers, int(both + only_b), int(both))


@pytest.mark.parametrize(("a", "b", "joint"), [
    (0.90, 0.92, (0.60, 0.10, 0.15, 0.15)),  # ghost rates 0.70 and 0.75, strongly paired
    (0.995, 0.99, (0.55, 0.17, 0.09, 0.19)),  # saturated arms, as in the 30-day simulation
    (0.30, 0.25, (0.05, 0.10, 0.05, 0.80)),  # low rates, weakly paired
])
def test_the_interval_covers_the_planted_difference_at_its_level(a: float, b: float,
                                                                 joint: tuple[float, float, float, float]) -> None:
    truth = (a - (joint[0] + joint[1])) - (b - (joint[0] + joint[2]))
    rng = np.random.default_rng(7)
    covered = unpaired_covered = 0
    widths, unpaired_widths = [], []
    for _ in range(RUNS):
        ca, na, ga, cb, nb, gb, both = planted(rng, a, b, joint, customers=1_500, holdout=1_000)
        paired = lift_difference(ca, na, ga, cb, nb, gb, both, 1_000, alpha=0.05)
        unpaired = lift_difference(ca, na, ga, cb, nb, gb, None, 1_000, alpha=0.05)
        assert paired.interval is not None and unpaired.interval is not None
        covered += paired.interval[0] <= truth <= paired.interval[1]
        unpaired_covered += unpaired.interval[0] <= truth <= unpaired.interval[1]
        widths.append(paired.interval[1] - paired.interval[0])
        unpaired_widths.append(unpaired.interval[1] - unpaired.interval[0])
    # 2,000 runs: the standard error of a 95% coverage is 0.5 pp.
    assert 0.935 <= covered / RUNS <= 0.965, covered / RUNS
    assert unpaired_covered / RUNS >= 0.97  # without the pair count the interval errs wide, never narrow
    assert np.mean(widths) < np.mean(unpaired_widths)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_a_a_comparison_is_significant_as_often_as_alpha(seed: int) -> None:
    """Two arms of the same policy against the same ghost offers: the holdout's term cancels."""
    rng = np.random.default_rng(seed)
    significant = 0
    for _ in range(RUNS):
        ca, na, ga, cb, nb, _, _ = planted(rng, 0.4, 0.4, (0.3, 0.0, 0.0, 0.7), customers=1_000, holdout=500)
        significant += lift_difference(ca, na, ga, cb, nb, ga, ga, 500, alpha=0.05).significant
    assert 0.035 <= significant / RUNS <= 0.065, significant / RUNS


def test_arms_or_a_holdout_without_customers_give_no_difference() -> None:
    assert lift_difference(0, 0, 10, 5, 10, 10, 5, 20, alpha=0.05).estimate is None
    assert lift_difference(5, 10, 0, 5, 10, 0, 0, 0, alpha=0.05).interval is None
