"""The online calibrator: the map from a classifier's score to the rate observed among customers given it."""

import math
import pickle
import random

from models.calibration import LOGIT_RANGE, IsotonicBins, logit


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


def test_the_lazy_decay_keeps_the_sums_every_bin_would_hold_if_each_aged_at_every_label() -> None:
    # The calibrator ages its bins by one common scale (rescaled when it gets small) instead of multiplying every
    # bin at every label: the same sums within rounding, across rescales (a short half-life forces several).
    rng = random.Random(5)
    calibrator = IsotonicBins(half_life_labels=1_000, refit_every=100, min_labels=100)
    positives, totals, logit_sums = ([0.0] * calibrator.bins for _ in range(3))
    rescales = 0
    for n in range(60_000):
        raw = rng.random()
        label = rng.random() < raw
        decay = min(calibrator.decay, 1.0 - 1.0 / (n + calibrator.min_labels))
        for sums in (positives, totals, logit_sums):
            sums[:] = [value * decay for value in sums]
        b = calibrator._bin(raw)
        positives[b] += float(label)
        totals[b] += 1.0
        logit_sums[b] += min(max(logit(raw), -LOGIT_RANGE), LOGIT_RANGE)
        scale_before = calibrator._scale
        calibrator.learn_one(raw, label)
        rescales += calibrator._scale > scale_before
    assert rescales >= 3, rescales
    for kept, reference in ((calibrator.positives, positives), (calibrator.totals, totals),
                            (calibrator.logit_sums, logit_sums)):
        assert all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in zip(kept, reference, strict=True))
    assert calibrator.fitted and 0.0 < calibrator.transform(0.3) < calibrator.transform(0.7) < 1.0


def test_a_calibrator_checkpointed_before_the_lazy_decay_restores_its_sums() -> None:
    calibrator = IsotonicBins(min_labels=10, refit_every=10)
    _learn(calibrator, random.Random(6), 200, rate_at_high=0.6)
    old_layout = {k: v for k, v in calibrator.__dict__.items() if k not in ("_positives", "_totals", "_logit_sums",
                                                                             "_scale")}
    old_layout.update(positives=calibrator.positives, totals=calibrator.totals, logit_sums=calibrator.logit_sums)
    restored = IsotonicBins.__new__(IsotonicBins)
    restored.__setstate__(pickle.loads(pickle.dumps(old_layout)))
    assert restored.totals == calibrator.totals and restored.positives == calibrator.positives
    assert restored.transform(0.9) == calibrator.transform(0.9)
    _learn(restored, random.Random(7), 100, rate_at_high=0.6)  # and it goes on learning
    assert restored.n_learned == 300
