"""River's StandardScaler learned and applied in one pass over a customer's features, and a linear model's
dot product with the standardised values computed without building them.

Segments and the averaged logistic learners each call `scaler.learn_one(x)` then `scaler.transform_one(x)` on
every example: two dict passes (three with segments' affinity weighting), about half of a segment's cost and a
sixth of learning a delayed label (py-spy, docs/benchmarks.md). `learn_standardised` writes River's update and
transform out in one loop: the same operations in the same order on the scaler's own counts, means and
variances, so the scaler and the values are River's, float for float (tests/models/learners/test_scaling.py).

>>> from river import preprocessing
>>> ours, rivers = preprocessing.StandardScaler(), preprocessing.StandardScaler()
>>> for x in ({"a": 1.0, "b": 5.0}, {"a": 3.0, "b": 5.0}, {"a": 8.0, "b": 2.0}):
...     z = learn_standardised(ours, x)
...     rivers.learn_one(x)
...     assert z == rivers.transform_one(x)
>>> (ours.means, ours.vars) == (rivers.means, rivers.vars)
True
"""

from __future__ import annotations

from collections.abc import Mapping

from river import preprocessing


def learn_standardised(scaler: preprocessing.StandardScaler, x: Mapping[str, float],
                       weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """`scaler.learn_one(x)`, then `scaler.transform_one(x)`, each value times `weights[name]` when given (which
    must name every feature of x). Only for River's plain StandardScaler (with_std, no window)."""
    counts, means, variances = scaler.counts, scaler.means, scaler.vars
    z = {}
    for name, value in x.items():
        n = counts[name] + 1
        counts[name] = n
        old_mean = means[name]
        means[name] = mean = old_mean + (value - old_mean) / n
        variance = variances[name]
        variances[name] = variance = variance + ((value - old_mean) * (value - mean) - variance) / n
        z[name] = (value - mean) / variance**0.5 if variance else 0.0
    if weights is not None:
        for name, value in z.items():
            z[name] = value * weights[name]  # x 1.0 leaves a float as it is
    return z



def standardised_dot(scaler: preprocessing.StandardScaler, x: Mapping[str, float],
                     weights: Mapping[str, float]) -> float:
    """The sum of `weights[name] * scaler.transform_one(x)[name]` (0 for a name without a weight): River's
    transform written out in the sum, the same terms added in the same order, without the dict of standardised
    values (a feature without variance standardises to 0 and adds nothing). Two scores ask this at every event
    and every timer visit.

    >>> from river import preprocessing
    >>> scaler = preprocessing.StandardScaler()
    >>> for x in ({"a": 1.0, "b": 5.0}, {"a": 3.0, "b": 5.0}):
    ...     scaler.learn_one(x)
    >>> standardised_dot(scaler, {"a": 3.0, "b": 5.0}, {"a": 2.0}) == 2.0 * scaler.transform_one({"a": 3.0})["a"]
    True
    """
    means, variances = scaler.means, scaler.vars
    total = 0.0
    for name, value in x.items():
        variance = variances[name]
        if variance:
            total += weights.get(name, 0.0) * ((value - means[name]) / variance**0.5)
    return total
