"""The logistic learners on a batch's settled labels: River's `learn_many` against the engine's one at a time.

    python bench/minibatch_labels.py [--customers 1000] [--days 60] [--seed 1] [--batches 50,500]
                                     [--score propensity|churn_risk] [--tafeng-share N]

The speed issue asks whether the delayed-label learners (propensity, churn risk) could learn a worker batch's
settled labels at once. This records the labels a score learns (propensity by default), in the order it learns
them, from a synthetic log (or, with `--tafeng-share N`, the Ta Feng customers whose id hashes to 0 modulo N)
run the way `perso evaluate` runs it (events and timer visits), then learns the first 70% of
them again offline in these ways and scores the last 30% (their ROC AUC; the labels are time-ordered, so
this is a forward test):
- the engine's `AveragedLogistic.learn_one`, one label at a time (what ships);
- River's `StandardScaler` + `LogisticRegression.learn_many` on pandas frames of `--batches` labels, at the
  engine's learning rate and at that rate times the square root of the batch (one mean-gradient step per
  batch takes a batch's labels as one example);
- the same learner one label at a time (`learn_one`), for its own reference;
- River's `learn_many` arithmetic written in numpy, without a pandas frame per batch;
- the engine's `MiniBatchLogistic` (propensity's with `PERSO_PROPENSITY_BATCH_LABELS` above 1: that arithmetic with
  averaged weights).
Prints µs per label learned and the AUC of each; writes bench/results/minibatch_labels.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
from river import linear_model, optim, preprocessing
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.evaluation import evaluate  # noqa: E402
from models.features import BEHAVIOUR_FEATURES  # noqa: E402
from models.learners.delayed import AveragedLogistic, DelayedLabelLearner, stored_features  # noqa: E402
from models.learners.minibatch import MiniBatchLogistic  # noqa: E402
from models.personalizer import Personalizer  # noqa: E402
from schemas.events import parse_event  # noqa: E402
from streams.datasets.synthetic import SyntheticShop, history  # noqa: E402

LOG_STARTS = 1_764_547_200.0


def recorded_labels(events: list[Any], score: str) -> list[tuple[dict[str, float], bool]]:
    """Every (features, label) the score's learner learns over the log, in order."""
    personalizer = Personalizer()
    learner = next(learner for learner in personalizer.learners
                   if isinstance(learner, DelayedLabelLearner) and learner.output == score)
    assert isinstance(learner, DelayedLabelLearner)
    kind = type(learner)
    learn = kind._learn
    labels: list[tuple[dict[str, float], bool]] = []

    def recording(self: DelayedLabelLearner, stored: Any, label: bool) -> None:
        values = stored_features(stored)
        if len(values) == len(BEHAVIOUR_FEATURES):
            labels.append((dict(zip(BEHAVIOUR_FEATURES, values, strict=True)), label))
        learn(self, stored, label)

    # On the class, not the object: the evaluation pickles its learners (their day-to-day stability check).
    kind._learn = recording  # type: ignore[method-assign]
    try:
        evaluate(personalizer, events)
    finally:
        kind._learn = learn  # type: ignore[method-assign]
    return labels


def one_at_a_time(train: list[tuple[dict[str, float], bool]], test: list[dict[str, float]], rate: float
                  ) -> tuple[float, list[float]]:
    model = AveragedLogistic(learning_rate=rate)
    started = time.perf_counter()
    for x, y in train:
        model.learn_one(x, y)
    spent = time.perf_counter() - started
    return spent, [model.margin_one(x) for x in test]


def engine_batches(train: list[tuple[dict[str, float], bool]], test: list[dict[str, float]], rate: float, size: int
                   ) -> tuple[float, list[float]]:
    """The engine's own mini-batch path (models/learners/minibatch.py: the numpy step below, with the averaged
    weights the scores use and the margin folded for one customer at a time)."""
    model = MiniBatchLogistic(BEHAVIOUR_FEATURES, learning_rate=rate, batch=size)
    started = time.perf_counter()
    for x, y in train:
        model.learn_one(x, y)
    spent = time.perf_counter() - started
    return spent, [model.margin_one(x) for x in test]


def river_learner(rate: float) -> tuple[preprocessing.StandardScaler, linear_model.LogisticRegression]:
    return preprocessing.StandardScaler(), linear_model.LogisticRegression(
        optimizer=optim.AdaGrad(rate), l2=1e-4, intercept_lr=0.01)


def river_one(train: list[tuple[dict[str, float], bool]], test: list[dict[str, float]], rate: float
              ) -> tuple[float, list[float]]:
    scaler, model = river_learner(rate)
    started = time.perf_counter()
    for x, y in train:
        scaler.learn_one(x)
        model.learn_one(scaler.transform_one(x), y)
    spent = time.perf_counter() - started
    return spent, [model.predict_proba_one(scaler.transform_one(x)).get(True, 0.0) for x in test]


def river_many(train: list[tuple[dict[str, float], bool]], test: list[dict[str, float]], rate: float, size: int
               ) -> tuple[float, list[float]]:
    scaler, model = river_learner(rate)
    started = time.perf_counter()
    for start in range(0, len(train), size):
        chunk = train[start:start + size]
        frame = pd.DataFrame([x for x, _ in chunk], columns=list(BEHAVIOUR_FEATURES))
        scaler.learn_many(frame)
        model.learn_many(scaler.transform_many(frame), pd.Series([y for _, y in chunk]))
    spent = time.perf_counter() - started
    scores: Any = model.predict_proba_many(scaler.transform_many(pd.DataFrame(test, columns=list(BEHAVIOUR_FEATURES))))
    return spent, list(scores[True])  # a pandas frame, a column per class


def numpy_many(train: list[tuple[dict[str, float], bool]], test: list[dict[str, float]], rate: float, size: int
               ) -> tuple[float, list[float]]:
    """River's learn_many arithmetic (batch mean and variance merged into the running ones, one AdaGrad step on
    the batch's mean gradient, L2, the intercept's own step) in numpy, without a pandas frame per batch: what a
    worker's path could cost (rows built from the labels' dicts included)."""
    names = list(BEHAVIOUR_FEATURES)
    width = len(names)
    count, mean, m2 = 0, np.zeros(width), np.zeros(width)
    weights, squares, intercept = np.zeros(width), np.zeros(width), 0.0
    started = time.perf_counter()
    for start in range(0, len(train), size):
        chunk = train[start:start + size]
        rows = np.array([[x[name] for name in names] for x, _ in chunk])
        labels = np.array([1.0 if y else 0.0 for _, y in chunk])
        n = len(rows)
        batch_mean = rows.mean(axis=0)
        delta = batch_mean - mean
        total = count + n
        m2 += ((rows - batch_mean) ** 2).sum(axis=0) + delta**2 * count * n / total
        mean += delta * n / total
        count = total
        std = np.sqrt(m2 / count)
        z = np.divide(rows - mean, std, out=np.zeros_like(rows), where=std > 0)
        loss_gradient = 1.0 / (1.0 + np.exp(-(z @ weights + intercept))) - labels
        gradient = z.T @ loss_gradient / n + 1e-4 * weights
        intercept -= 0.01 * loss_gradient.mean()
        squares += gradient**2
        weights -= rate * gradient / np.sqrt(squares + 1e-8)
    spent = time.perf_counter() - started
    held = np.array([[x[name] for name in names] for x in test])
    std = np.sqrt(m2 / max(count, 1))
    z = np.divide(held - mean, std, out=np.zeros_like(held), where=std > 0)
    return spent, list(z @ weights)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--days", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batches", default="50,500")
    parser.add_argument("--score", default="propensity", choices=["propensity", "churn_risk"])
    parser.add_argument("--tafeng-share", type=int, default=0, metavar="N",
                        help="Ta Feng's customers whose id hashes to 0 modulo N instead of the synthetic log")
    args = parser.parse_args()
    if args.tafeng_share:
        from streams.datasets.public_logs import read_tafeng

        events: list[Any] = [e for e in read_tafeng() if zlib.crc32(e.customer_id.encode()) % args.tafeng_share == 0]
    else:
        shop = SyntheticShop(n_customers=args.customers, seed=args.seed, prefix="mb")
        events = [parse_event(kind, orjson.dumps(body)) for kind, body in history(shop, args.days, LOG_STARTS)]
    labels = recorded_labels(events, args.score)
    cut = int(len(labels) * 0.7)
    train, held = labels[:cut], labels[cut:]
    test = [x for x, _ in held]
    truth = np.array([y for _, y in held])
    learner = next(learner for learner in Personalizer().learners
                   if isinstance(learner, DelayedLabelLearner) and learner.output == args.score)
    rate = learner.learning_rate
    runs: list[tuple[str, float, list[float]]] = [("AveragedLogistic, one at a time (the default)",
                                                   *one_at_a_time(train, test, rate))]
    runs.append(("River LogisticRegression, one at a time", *river_one(train, test, rate)))
    for size in (int(s) for s in args.batches.split(",")):
        runs.append((f"River learn_many, batches of {size}", *river_many(train, test, rate, size)))
        scaled = rate * size**0.5
        runs.append((f"River learn_many, batches of {size}, rate x sqrt({size})",
                     *river_many(train, test, scaled, size)))
        runs.append((f"the same in numpy, batches of {size}", *numpy_many(train, test, rate, size)))
        runs.append((f"engine MiniBatchLogistic, batches of {size}", *engine_batches(train, test, rate, size)))
    results = []
    for name, spent, scores in runs:
        auc = float(roc_auc_score(truth, scores))
        results.append({"learner": name, "us_per_label": round(spent / len(train) * 1e6, 2), "auc": round(auc, 4)})
    log = f"tafeng/{args.tafeng_share}" if args.tafeng_share else "synthetic"
    summary = {"score": args.score, "log": log, "learning_rate": rate, "labels_learned": len(train),
               "labels_scored": len(held), "positive_share": round(float(truth.mean()), 4), "results": results}
    out = ROOT / "bench" / "results" / "minibatch_labels.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
    print(f"{len(train):,} {args.score} labels learned ({summary['log']}, AdaGrad step {rate}), "
          f"the next {len(held):,} scored:")
    for row in results:
        print(f"  {row['learner']:<52} {row['us_per_label']:>8.2f} µs per label   AUC {row['auc']:.4f}")


if __name__ == "__main__":
    main()
