"""The mini-batch logistic learner (models/learners/minibatch.py): River's scaler statistics, the folded margin
equal to the standardised dot product, labels waiting in a batch kept by a checkpoint, a one-at-a-time model
carried over, and a ranking as good as one at a time on a planted truth."""

from __future__ import annotations

import math
import pickle
import random

import numpy as np
import pytest
from river import preprocessing
from sklearn.metrics import roc_auc_score

from models import checkpoint
from models.features import BEHAVIOUR_FEATURES
from models.learners.delayed import AveragedLogistic, batched
from models.learners.minibatch import MiniBatchLogistic
from models.learners.propensity import PropensityModel
from models.personalizer import Personalizer
from models.settings import ModelSettings

NAMES = ("a", "b", "c", "d", "constant")


def stream(seed: int, n: int, names: tuple[str, ...] = NAMES) -> list[tuple[dict[str, float], bool]]:
    """Labels from a planted logistic truth over the first names ("constant" never varies)."""
    rng = random.Random(seed)
    truth = [1.5, -1.0, 0.5, 0.0]
    out = []
    for _ in range(n):
        x = {name: rng.gauss(k, 1.0 + k) for k, name in enumerate(names[:-1])} | {names[-1]: 0.3}
        logit = sum(w * (x[name] - k) / (1.0 + k) for k, (w, name) in enumerate(zip(truth, names, strict=False)))
        out.append((x, rng.random() < 1.0 / (1.0 + math.exp(-logit))))
    return out


def explicit_margin(model: MiniBatchLogistic, x: dict[str, float]) -> float:
    deviation = np.sqrt(model.m2 / model.count)
    return sum(w * (x[name] - m) / s for name, w, m, s in zip(model.features, model.averaged, model.mean, deviation,
                                                               strict=True) if s > 1e-9)


def test_the_scaler_keeps_rivers_statistics() -> None:
    model, river = MiniBatchLogistic(NAMES, batch=37), preprocessing.StandardScaler()
    for x, y in stream(1, 37 * 20):
        model.learn_one(x, y)
        river.learn_one(x)
    assert model.count == river.counts["a"] == 740
    for k, name in enumerate(NAMES):
        assert model.mean[k] == pytest.approx(river.means[name], rel=1e-9, abs=1e-12)
        assert model.m2[k] / model.count == pytest.approx(river.vars[name], rel=1e-9, abs=1e-12)


def test_the_folded_margin_is_the_standardised_dot_product_and_a_constant_weighs_nothing() -> None:
    model = MiniBatchLogistic(NAMES, batch=50)
    labels = stream(2, 2000)
    for x, y in labels:
        model.learn_one(x, y)
    coefficients, _ = model._fold()
    assert coefficients[NAMES.index("constant")] == 0.0  # its variance is rounding, not River's exact 0
    for x, _ in labels[:50]:
        assert model.margin_one(x) == pytest.approx(explicit_margin(model, x), rel=1e-9, abs=1e-12)
    assert 0.0 < model.predict_proba_one(labels[0][0])[True] < 1.0
    terms = model.contributions(labels[0][0])
    assert sum(terms.values()) == pytest.approx(explicit_margin(model, labels[0][0]), rel=1e-9, abs=1e-12)


def test_labels_waiting_for_their_batch_survive_a_checkpoint() -> None:
    model = MiniBatchLogistic(NAMES, batch=50)
    labels = stream(3, 1030)
    for x, y in labels[:530]:
        model.learn_one(x, y)
    assert len(model.pending) == 30 and model.n == 500
    restored = pickle.loads(pickle.dumps(model))
    assert "_folded" not in restored.__getstate__()
    for copy in (model, restored):
        for x, y in labels[530:]:
            copy.learn_one(x, y)
    assert restored.n == model.n == 1000 and restored.pending == model.pending
    assert restored.averaged.tolist() == model.averaged.tolist()
    assert restored.margin_one(labels[0][0]) == model.margin_one(labels[0][0])


def test_a_model_learned_one_at_a_time_is_carried_over_and_scores_the_same() -> None:
    one_at_a_time = AveragedLogistic()
    labels = stream(4, 1500)
    for x, y in labels:
        one_at_a_time.learn_one(x, y)
    carried = batched(one_at_a_time, batch=50, features=NAMES)
    assert (carried.n, carried.count, carried.intercept) == (1500, 1500, one_at_a_time.intercept)
    for x, _ in labels[:100]:
        assert carried.margin_one(x) == pytest.approx(one_at_a_time.margin_one(x), rel=1e-9, abs=1e-9)
    # It learns on: the next batch moves it, by a step of the size it had been taking.
    before = carried.averaged.copy()
    for x, y in stream(5, 50):
        carried.learn_one(x, y)
    assert carried.n == 1550 and not np.array_equal(before, carried.averaged)
    assert np.abs(carried.averaged - before).max() < 0.05


def test_a_restored_propensity_takes_todays_batch_size_and_keeps_what_it_learned() -> None:
    """A checkpoint saved one at a time restores into batches when PERSO_PROPENSITY_BATCH_LABELS asks, and back."""
    saved = Personalizer(ModelSettings(learners=["cooccurrence", "propensity"]))
    learner = saved.learners[1]
    assert isinstance(learner, PropensityModel) and isinstance(learner.classifier, AveragedLogistic)
    rng = random.Random(6)
    for _ in range(430):
        x = {name: rng.random() for name in BEHAVIOUR_FEATURES}
        learner._learn(",".join(str(x[name]) for name in BEHAVIOUR_FEATURES), rng.random() < x["log_orders"])
    probe = {name: rng.random() for name in BEHAVIOUR_FEATURES}
    expected = learner.predict_proba(probe)

    batched = Personalizer(ModelSettings(learners=["cooccurrence", "propensity"], propensity_batch_labels=50))
    checkpoint.load_into(batched, checkpoint.dump(saved))
    restored = batched.learners[1]
    assert isinstance(restored, PropensityModel) and isinstance(restored.classifier, MiniBatchLogistic)
    assert restored.batch_labels == restored.classifier.batch == 50 and restored.n_learned == 430
    assert restored.predict_proba(probe) == pytest.approx(expected, abs=1e-9)
    for _ in range(20):  # waiting for their batch when saved again
        x = {name: rng.random() for name in BEHAVIOUR_FEATURES}
        restored._learn(",".join(str(x[name]) for name in BEHAVIOUR_FEATURES), rng.random() < x["log_orders"])
    assert len(restored.classifier.pending) == 20

    back = Personalizer(ModelSettings(learners=["cooccurrence", "propensity"]))
    checkpoint.load_into(back, checkpoint.dump(batched))
    again = back.learners[1]
    assert isinstance(again, PropensityModel) and isinstance(again.classifier, AveragedLogistic)
    assert again.batch_labels == 1 and again.classifier.n == 450  # the 20 waiting were learned, not dropped
    restored.classifier.flush()
    assert again.predict_proba(probe) == pytest.approx(restored.predict_proba(probe), abs=1e-9)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_it_ranks_as_well_as_one_at_a_time_on_a_planted_truth(seed: int) -> None:
    labels = stream(seed, 12_000)
    train, held = labels[:9000], labels[9000:]
    batched, one_at_a_time = MiniBatchLogistic(NAMES, batch=50), AveragedLogistic()
    for x, y in train:
        batched.learn_one(x, y)
        one_at_a_time.learn_one(x, y)
    truth = [y for _, y in held]
    auc_batched = roc_auc_score(truth, [batched.margin_one(x) for x, _ in held])
    auc_one = roc_auc_score(truth, [one_at_a_time.margin_one(x) for x, _ in held])
    assert auc_batched >= auc_one - 0.005, (auc_batched, auc_one)
    assert auc_batched > 0.7


def test_a_batch_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="batch must be at least 1"):
        MiniBatchLogistic(NAMES, batch=0)
