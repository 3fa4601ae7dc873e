"""Off-policy evaluation: what another policy would have converted, estimated from offers a logging policy made.

Every logged offer says with which probability its item was chosen (`Offer.probability`). A target policy that
would have chosen the same item with probability q gets the offer's outcome weighted by w = q / p:

- **IPS** (inverse propensity scoring): the mean of w * reward. Unbiased when the logging policy gave every item
  the target could choose a positive probability; its variance grows with the weights.
- **SNIPS** (self-normalised): sum(w * reward) / sum(w). Slightly biased, far less variable; the figure to read
  when the weights are large (few logged offers agree with the target).

Both need the logging policy to give a positive probability to every item the target offers. The mean weight
checks it: its expectation is 1 then. Below 1, the target offers items the logger never offered, or nothing at
all: IPS counts those moments as misses (a lower bound when rewards are 0 or 1), and SNIPS, which divides by
the weights, is biased upwards: it describes only the moments the two agree on.

Both come with a normal interval (IPS: the sample variance of w * reward; SNIPS: the delta method), the
effective sample size (sum w)^2 / sum w^2, and the share of logged offers the target agrees with at all. A
deterministic logging policy (probability 1) supports only the offers on which the target agrees with it.
The normal intervals hold when the effective sample is in the hundreds: on a planted truth (tests) 95%
intervals covered 94-96% at ~370 effective offers, 88-90% at ~110, where the weights' skew shows.

>>> logged = [Logged(probability=0.5, reward=1.0, target_probability=1.0),
...           Logged(probability=0.5, reward=0.0, target_probability=0.0),
...           Logged(probability=0.5, reward=0.0, target_probability=1.0),
...           Logged(probability=0.5, reward=1.0, target_probability=0.0)]
>>> estimates = off_policy_estimates(logged)
>>> estimates["ips"].value, estimates["snips"].value, estimates["snips"].agreeing
(0.5, 0.5, 0.5)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from scipy.stats import norm

# Where a report warns (`perso evaluate --from-log`, `perso simulate --off-policy`): a mean weight below this says
# the target offers what the logger never did; an effective sample below this, that the normal intervals do not
# hold (their coverage on a planted truth, above).
LOW_MEAN_WEIGHT = 0.9
MIN_EFFECTIVE_OFFERS = 100


@dataclass(frozen=True)
class Logged:
    """One logged offer: the logging policy's probability of the offered item, its outcome (1 converted, 0 not),
    and the probability the target policy gives the same item in the same moment."""

    probability: float
    reward: float
    target_probability: float


@dataclass(frozen=True)
class Estimate:
    """A policy value estimate with its (1 - alpha) normal interval."""

    estimator: str
    value: float
    low: float
    high: float
    offers: int
    effective_offers: float  # (sum w)^2 / sum w^2: how many equally weighted offers the estimate is worth
    agreeing: float  # share of logged offers the target would have made with a positive probability
    mean_weight: float  # 1 when the logging policy covers every item the target offers; below: it does not

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def off_policy_estimates(logged: Iterable[Logged], alpha: float = 0.05) -> dict[str, Estimate]:
    """IPS and SNIPS estimates of the target's conversion per offer. Raises ValueError on an empty log or a
    probability outside (0, 1]."""
    weights: list[float] = []
    rewards: list[float] = []
    for row in logged:
        if not 0.0 < row.probability <= 1.0:
            raise ValueError(f"a logged probability must be in (0, 1], not {row.probability!r}")
        if not 0.0 <= row.target_probability <= 1.0:
            raise ValueError(f"a target probability must be in [0, 1], not {row.target_probability!r}")
        weights.append(row.target_probability / row.probability)
        rewards.append(row.reward)
    n = len(weights)
    if n == 0:
        raise ValueError("no logged offers to evaluate")
    z = float(norm.ppf(1 - alpha / 2))
    total_w = sum(weights)
    squares = sum(w * w for w in weights)
    effective = total_w * total_w / squares if squares > 0 else 0.0
    agreeing = sum(1 for w in weights if w > 0) / n

    weighted = [w * r for w, r in zip(weights, rewards, strict=True)]
    ips = sum(weighted) / n
    ips_var = sum((x - ips) ** 2 for x in weighted) / (n - 1) if n > 1 else 0.0
    ips_half = z * math.sqrt(ips_var / n)

    if total_w > 0:
        snips = sum(weighted) / total_w
        # Delta method for a ratio of means: Var ~ sum w^2 (r - V)^2 / (sum w)^2.
        snips_half = z * math.sqrt(sum(w * w * (r - snips) ** 2 for w, r in zip(weights, rewards, strict=True))) \
            / total_w
    else:
        snips, snips_half = math.nan, math.nan
    return {
        "ips": Estimate("ips", ips, ips - ips_half, ips + ips_half, n, effective, agreeing, total_w / n),
        "snips": Estimate("snips", snips, snips - snips_half, snips + snips_half, n, effective, agreeing,
                          total_w / n),
    }
