"""The online calibrator: the map from a classifier's score to the rate observed among customers given it."""

import random

from models.calibration import IsotonicBins


def _learn(calibrator: IsotonicBins, rng: random.Random, n: int, rate_at_high: float) -> None:
    for _ in range(n):
        raw = rng.choice([0.1, 0.9])
        calibrator.learn_one(raw, rng.random() < (rate_at_high if raw == 0.9 else 0.05))


def test_the_map_drawn_by_the_first_labels_fades_faster_than_the_half_life() -> None:
    # A young classifier's score means something else than the same score later (its weights are still growing):
    # on Ta Feng, churn risk read 0.30 for a rate of 0.57 three weeks in, from maps drawn in the first days.
    # The first labels weigh by their rank, so after 100,000 labels the first 30,000 keep about a tenth of the map
    # where the half-life alone (500,000 labels) would have kept ~30%: the score reads 0.48 then, not ~0.56.
    rng = random.Random(3)
    calibrator = IsotonicBins(half_life_labels=500_000)
    _learn(calibrator, rng, 30_000, rate_at_high=0.2)
    _learn(calibrator, rng, 70_000, rate_at_high=0.6)
    assert calibrator.transform(0.9) > 0.55, calibrator.transform(0.9)
    assert abs(calibrator.transform(0.1) - 0.05) < 0.02, calibrator.transform(0.1)


def test_once_past_the_rank_weighting_a_short_run_weighs_by_its_share_under_the_half_life() -> None:
    # Late in a stream the half-life alone sets the memory (the rank weighting ends after ~1.44 half-lives of
    # labels): 2,000 labels of a different rate after 400,000 move the map by about their weight under it.
    rng = random.Random(4)
    calibrator = IsotonicBins(half_life_labels=50_000)
    _learn(calibrator, rng, 400_000, rate_at_high=0.6)
    before = calibrator.transform(0.9)
    _learn(calibrator, rng, 2_000, rate_at_high=0.0)
    after = calibrator.transform(0.9)
    # 2,000 labels of a ~72,000-label memory (half-life / ln 2): ~3% of the mass, so the rate drops by ~0.017.
    assert 0.57 < before < 0.63, before
    assert before - 0.05 < after < before - 0.005, (before, after)
