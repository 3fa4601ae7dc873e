"""A decision's draws are uniform: off-policy evaluation weighs logged offers by the probability a decision says it
chose them with, which holds only if the draws behind it are uniform. Tested with chi-square goodness of fit
over many decision keys, as keys come in a replay (one customer, consecutive moments), on several seeds."""

from __future__ import annotations

import itertools

import pytest
from scipy import stats

from models.policies.draws import DecisionDraws

KEYS = 20_000


def keys(seed: int) -> list[str]:
    # Keys as decisions make them: few customers, moments seconds apart (similar texts must draw independently).
    return [f"cust-{seed}-{n % 50}:{1_764_547_200.0 + n * 1.5}" for n in range(KEYS)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_first_draws_are_uniform_over_decision_keys(seed: int) -> None:
    draws = [DecisionDraws(key) for key in keys(seed)]
    # random(): 20 equal bins; randrange(7): 7 values; a second random() independent of the first.
    bins = [0] * 20
    faces = [0] * 7
    pairs = [0] * 16
    for d in draws:
        first = d.random()
        bins[int(first * 20)] += 1
        faces[d.randrange(7)] += 1
        pairs[int(first * 4) * 4 + int(d.random() * 4)] += 1
    for counts in (bins, faces, pairs):
        assert stats.chisquare(counts).pvalue > 0.001, counts


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_samples_choose_every_subset_equally_often(seed: int) -> None:
    population = ["a", "b", "c", "d", "e"]
    subsets = {frozenset(s): 0 for s in itertools.combinations(population, 2)}
    for key in keys(seed):
        chosen = DecisionDraws(key).sample(population, 2)
        assert len(set(chosen)) == 2
        subsets[frozenset(chosen)] += 1
    assert stats.chisquare(list(subsets.values())).pvalue > 0.001, subsets


def test_the_same_key_draws_the_same_and_bad_arguments_say_so() -> None:
    a, b = DecisionDraws("c1:5.0"), DecisionDraws("c1:5.0")
    assert [a.random() for _ in range(5)] == [b.random() for _ in range(5)]
    assert DecisionDraws("c1:5.0").random() != DecisionDraws("c1:5.5").random()
    with pytest.raises(ValueError, match="n > 0"):
        a.randrange(0)
    with pytest.raises(ValueError, match="cannot sample 3 of 2"):
        a.sample(["x", "y"], 3)
