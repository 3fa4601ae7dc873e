"""The statistics of a lift: one group's figure minus another's, with its interval at 1 - alpha, p-value and
whether the interval excludes 0. Pure functions of counts and sums; models/experiments/report.py applies them to
an experiment's arms.

>>> conversion, relative = conversion_lifts(130, 1000, 100, 1000, alpha=0.05)
>>> round(conversion.estimate, 4), conversion.significant
(0.03, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import optimize, stats

# The module, not its names: pytest would collect an imported `test_proportions_2indep` as a test of this module.
from statsmodels.stats import proportion

Interval = tuple[float, float]


@dataclass(frozen=True)
class Lift:
    """One figure of an arm minus another's (the reference's, or another arm's): the estimate, its interval at
    1 - alpha, the two-sided p-value and whether the interval excludes 0. `estimate` is None when undefined (an arm
    without customers; a relative lift over a reference rate of 0); `interval` and `p_value` are None when they
    cannot be computed honestly (fewer than 2 customers in an arm for a revenue lift)."""

    estimate: float | None
    interval: Interval | None
    p_value: float | None
    significant: bool


def variance(total: float, total_sq: float, n: int) -> float:
    """Sample variance (n - 1) from a sum and a sum of squares; rounding residue below 1e-12 of the mean square
    is taken as 0 (identical values), negative residue likewise."""
    mean = total / n
    var = (total_sq - n * mean * mean) / (n - 1)
    return 0.0 if var <= 1e-12 * max(total_sq / n, 1e-300) else var


UNDEFINED = Lift(None, None, None, False)  # undefined: an arm without customers, or a ratio over a reference rate of 0


def excludes_zero(interval: Interval | None) -> bool:
    return interval is not None and (interval[0] > 0 or interval[1] < 0)


def lift(estimate: float | None, interval: Interval | None, p_value: float | None) -> Lift:
    return Lift(estimate, interval, p_value, excludes_zero(interval))


def conversion_lifts(c1: int, n1: int, c2: int, n2: int, alpha: float) -> tuple[Lift, Lift]:
    """The difference c1/n1 - c2/n2 of two independent groups' rates, and their ratio - 1."""
    if n1 == 0 or n2 == 0:
        return UNDEFINED, UNDEFINED
    p1, p2 = c1 / n1, c2 / n2
    # Newcombe's hybrid score interval rather than the Miettinen-Nurminen score interval: it is closed-form (the
    # score interval's root finding is ~10x slower and raises at 0 or 100% conversions in both arms), defined for
    # every count including 0 in either arm, and its coverage is close to nominal down to small counts. Its
    # p-value is the test it inverts (`newcombe_p_value`): a score test's p could read 0.047 beside an interval
    # that held 0, "p=0.047 not significant" in the demo's report.
    low, high = proportion.confint_proportions_2indep(c1, n1, c2, n2, compare="diff", method="newcomb", alpha=alpha)
    conversion = lift(p1 - p2, (float(low), float(high)), newcombe_p_value(c1, n1, c2, n2))
    if c2 == 0:
        return conversion, UNDEFINED
    low, high = proportion.confint_proportions_2indep(c1, n1, c2, n2, compare="ratio", method="log-adjusted",
                                                      alpha=alpha)
    # The same null (p1 = p2) as the difference, so the same p-value; the flag uses the ratio's own interval.
    return conversion, lift(p1 / p2 - 1, (float(low) - 1, float(high) - 1), conversion.p_value)


def _wilson(rate: float, n: int, z: float) -> Interval:
    """Wilson's score interval of a rate over n at the normal quantile z (what statsmodels' "wilson" computes)."""
    z2 = z * z
    centre = (rate + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(rate * (1 - rate) / n + z2 / (4 * n * n))
    return centre - half, centre + half


def newcombe_p_value(c1: int, n1: int, c2: int, n2: int) -> float:
    """The two-sided p-value of the test Newcombe's interval for c1/n1 - c2/n2 inverts: the alpha at which the
    interval's bound on 0's side reaches 0. So p < alpha exactly when the interval at 1 - alpha excludes 0.

    >>> p = newcombe_p_value(470, 3900, 400, 4000)
    >>> low, _ = proportion.confint_proportions_2indep(470, 3900, 400, 4000, compare="diff", method="newcomb", alpha=p)
    >>> round(p, 4), bool(abs(low) < 1e-9)  # the score test's p is 0.0036 too
    (0.0036, True)
    """
    p1, p2 = c1 / n1, c2 / n2
    difference = p1 - p2
    if difference == 0:  # also 0% or 100% in both arms: no evidence
        return 1.0
    side = 1.0 if difference > 0 else -1.0

    def bound(z: float) -> float:  # the bound on 0's side at z, times the difference's sign: shrinks past 0 as z grows
        low1, high1 = _wilson(p1, n1, z)
        low2, high2 = _wilson(p2, n2, z)
        spread = math.hypot(p1 - low1, high2 - p2) if side > 0 else math.hypot(high1 - p1, p2 - low2)
        return side * difference - spread

    z_high = 1.0
    while bound(z_high) > 0:
        z_high *= 2
        if z_high > 64:  # beyond any p a float tells from 0
            return 0.0
    return float(2 * stats.norm.sf(optimize.brentq(bound, 0.0, z_high, xtol=1e-12)))


def welch_lift(s1: float, sq1: float, n1: int, s2: float, sq2: float, n2: int, alpha: float) -> Lift:
    if n1 == 0 or n2 == 0:
        return UNDEFINED
    m1, m2 = s1 / n1, s2 / n2
    diff = m1 - m2
    if n1 < 2 or n2 < 2:
        return lift(diff, None, None)
    v1, v2 = variance(s1, sq1, n1), variance(s2, sq2, n2)
    e1, e2 = v1 / n1, v2 / n2
    se = math.sqrt(e1 + e2)
    if se == 0:  # no variance in either arm: the difference is what it is
        return lift(diff, (diff, diff), 1.0 if diff == 0 else 0.0)
    df = (e1 + e2) ** 2 / (e1 * e1 / (n1 - 1) + e2 * e2 / (n2 - 1))  # Welch-Satterthwaite
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    p = float(stats.ttest_ind_from_stats(m1, math.sqrt(v1), n1, m2, math.sqrt(v2), n2, equal_var=False).pvalue)
    return lift(diff, (diff - half, diff + half), p)


def lift_difference(converted_a: int, customers_a: int, ghost_a: int, converted_b: int, customers_b: int,
                    ghost_b: int, ghost_both: int | None, holdout: int, alpha: float) -> Lift:
    """Arm A's conversion lift minus arm B's, each lift measured against the holdout's conversions of its own
    policy's (ghost) offers: (a - ghost_a) - (b - ghost_b), rates over each group's customers. A and B are
    independent groups; the two ghost rates are of the same `holdout` customers, so their covariance comes from
    `ghost_both`, the holdout customers who converted under both. Wald interval on the difference (normal
    approximation: counts of hundreds per group). `ghost_both` None (not counted): the covariance is taken at its
    most unfavourable (a correlation of -1), so the interval is conservative. When A's and B's offers are the
    same policy's, pass ghost_a == ghost_b == ghost_both: the holdout's term then cancels.

    Nearly every customer of either arm converts; the holdout bought A's items anyway less often than B's, and
    mostly the same customers did:

    >>> d = lift_difference(1990, 2000, 1400, 1985, 2000, 1460, ghost_both=1350, holdout=2000, alpha=0.05)
    >>> round(d.estimate, 4), [round(x, 4) for x in d.interval], d.significant
    (0.0325, [0.0192, 0.0458], True)
    >>> unpaired = lift_difference(1990, 2000, 1400, 1985, 2000, 1460, ghost_both=None, holdout=2000, alpha=0.05)
    >>> [round(x, 4) for x in unpaired.interval], unpaired.significant
    ([-0.0073, 0.0723], False)
    """
    if min(customers_a, customers_b, holdout) == 0:
        return UNDEFINED
    a, b = converted_a / customers_a, converted_b / customers_b
    g_a, g_b = ghost_a / holdout, ghost_b / holdout
    estimate = (a - g_a) - (b - g_b)
    spread_a, spread_b = g_a * (1 - g_a), g_b * (1 - g_b)
    # Not counted: a correlation of -1, the most the covariance can widen the interval.
    covariance = -math.sqrt(spread_a * spread_b) if ghost_both is None else ghost_both / holdout - g_a * g_b
    holdout_variance = max(spread_a + spread_b - 2 * covariance, 0.0)
    se = math.sqrt(a * (1 - a) / customers_a + b * (1 - b) / customers_b + holdout_variance / holdout)
    if se == 0:
        return lift(estimate, (estimate, estimate), 1.0 if estimate == 0 else 0.0)
    half = float(stats.norm.ppf(1 - alpha / 2)) * se
    p = float(2 * stats.norm.sf(abs(estimate) / se))
    return lift(estimate, (estimate - half, estimate + half), p)
