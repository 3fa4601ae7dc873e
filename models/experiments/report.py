"""The report of an experiment: each arm's conversion and revenue with intervals, the lift of each arm against the
reference (the holdout), and the sample-ratio check. Pure statistics on counts the engine keeps; no I/O.

Every interval is at confidence 1 - alpha (95% by default); docs/experiments.md says which method gives which
figure and why. These are fixed-horizon tests: read them at the end of a duration decided in advance.

>>> holdout = ArmCounts("holdout", "holdout", 0.5, customers=1000, converted_customers=100)
>>> nbo = ArmCounts("nbo", "nbo", 0.5, customers=1000, converted_customers=130)
>>> report = experiment_report("spring", [holdout, nbo])
>>> lift = report.arm("nbo").conversion_lift
>>> round(lift.estimate, 4), [round(x, 4) for x in lift.interval], lift.significant
(0.03, [0.002, 0.0581], True)
>>> report.srm_warning
False
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from scipy import stats

# The module, not its names: pytest would collect an imported `test_proportions_2indep` as a test of this module.
from statsmodels.stats import proportion

from models.experiments.attribution import BOTH, both_field
from models.experiments.lifts import Interval, Lift, conversion_lifts, lift_difference, variance, welch_lift

__all__ = ["ArmCounts", "ArmReport", "ExperimentReport", "Lift", "experiment_report", "format_report"]

FieldValue = str | bytes | float | int

OUTCOME_PREFIX = "outcome:"
FEEDBACK = ("delivered", "opened", "clicked", "dismissed", "redeemed")
_INT_FIELDS = ("customers", "offers", "published", *FEEDBACK, "converted_offers", "converted_customers", "buyers")
_FLOAT_FIELDS = ("attributed_revenue", "attributed_revenue_sq", "revenue", "revenue_sq")
WIDTH = 120  # the longest line format_report writes


@dataclass(frozen=True)
class ArmCounts:
    """What the engine counted for one arm of an experiment (all counts exactly once)."""

    arm: str  # arm name, e.g. "holdout", "nbo", "popular"
    policy: str  # the policy the arm runs ("holdout" for the holdout)
    share: float  # configured share of customers, 0 < share <= 1 (shares of an experiment sum to 1)
    customers: int = 0  # customers assigned to the arm who had at least one event during the experiment
    offers: int = 0  # offers decided (for the holdout: decided and recorded, never sent)
    published: int = 0  # offers published (0 for the holdout)
    delivered: int = 0  # offers with at least one 'delivered' feedback (likewise opened, clicked, dismissed, redeemed)
    opened: int = 0
    clicked: int = 0
    dismissed: int = 0
    redeemed: int = 0
    converted_offers: int = 0  # offers whose item the customer bought within the attribution window (or redeemed)
    converted_customers: int = 0  # customers with at least one converted offer
    attributed_revenue: float = 0.0  # sum over customers of r_c, the revenue of their converted offers
    attributed_revenue_sq: float = 0.0  # sum over customers of r_c ** 2
    revenue: float = 0.0  # sum over customers of all their purchase revenue since joining the experiment
    revenue_sq: float = 0.0  # sum over customers of (that revenue) ** 2
    buyers: int = 0  # customers with at least one purchase since joining
    # a holdout's customers converted under both of two of its offer references (its own offers and its ghost
    # arms'), by `attribution.both_field` of the two names: what pairs two arms' lifts
    converted_both: Mapping[str, int] = field(default_factory=dict)
    # closed offers by final outcome: converted, clicked, ignored, expired
    outcomes: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.share) and 0 < self.share <= 1):
            raise ValueError(f"arm {self.arm!r}: share must be in (0, 1], got {self.share!r}")

    @classmethod
    def from_fields(
        cls, arm: str, policy: str, share: float, fields: Mapping[str, FieldValue] | Mapping[bytes, FieldValue]
    ) -> ArmCounts:
        """From a flat hash as stored (Redis HGETALL: bytes or str values; numeric strings like "3" or "12.5").
        Keys 'outcome:converted', 'outcome:clicked', ... go into `outcomes`; unknown keys are ignored; missing keys
        are 0. Keys may be bytes too (a client without decode_responses).

        >>> ArmCounts.from_fields("nbo", "nbo", 0.5, {b"customers": b"3", "revenue": "12.5", "outcome:expired": "2",
        ...                                           "someday": "9"})  # doctest: +ELLIPSIS
        ArmCounts(arm='nbo', policy='nbo', share=0.5, customers=3, ..., revenue=12.5, ..., outcomes={'expired': 2})
        """
        values: dict[str, FieldValue] = {_text(key): value for key, value in fields.items()}
        counts: dict[str, Any] = {name: _to_int(values[name], name) for name in _INT_FIELDS if name in values}
        counts |= {name: _to_float(values[name], name) for name in _FLOAT_FIELDS if name in values}
        outcomes = {key[len(OUTCOME_PREFIX):]: _to_int(value, key) for key, value in values.items()
                    if key.startswith(OUTCOME_PREFIX) and len(key) > len(OUTCOME_PREFIX)}
        both = {key: _to_int(value, key) for key, value in values.items() if key.startswith(BOTH)}
        return cls(arm, policy, share, **counts, converted_both=both, outcomes=outcomes)


@dataclass(frozen=True)
class ArmReport:
    """One arm's figures; rates are None when their denominator is 0. The lifts are None for the reference arm."""

    arm: str
    policy: str
    share: float  # the configured share, renormalised so the experiment's shares sum to 1
    customers: int
    expected_customers: float  # total customers x share: what the sample-ratio check expects
    offers: int
    published: int
    feedback: Mapping[str, int]  # delivered, opened, clicked, dismissed, redeemed: offers with that feedback
    feedback_rates: Mapping[str, float | None]  # the same per published offer
    converted_offers: int
    offer_conversion_rate: float | None  # converted_offers / offers
    converted_customers: int
    conversion_rate: float | None  # converted_customers / customers
    conversion_interval: Interval | None  # Wilson
    revenue_per_customer: float | None
    revenue_interval: Interval | None  # t interval; None with fewer than 2 customers
    attributed_revenue_per_customer: float | None
    attributed_revenue_interval: Interval | None
    buyers: int
    buyer_rate: float | None
    outcomes: Mapping[str, int]
    conversion_lift: Lift | None = None  # difference of conversion rates (Newcombe interval, score-test p)
    relative_conversion_lift: Lift | None = None  # ratio of conversion rates - 1 (log-adjusted interval)
    revenue_lift: Lift | None = None  # difference of revenue per customer (Welch)
    attributed_revenue_lift: Lift | None = None  # difference of attributed revenue per customer (Welch)
    buyer_lift: Lift | None = None  # difference of buyer rates: any purchase (Newcombe interval, score-test p)
    # Whether the offer-based figures (conversion, attributed revenue) compare like with like: the holdout records
    # the offers of one policy (the deployment's), so for an arm of another policy they measure different items.
    # Revenue and buyers compare every arm fairly.
    offers_comparable: bool = True
    # The reference's conversion rate the conversion lift is measured against: the holdout's own, or its
    # customers' under the ghost offers of this arm's policy (then it differs from the holdout's row).
    conversion_reference: float | None = None


@dataclass(frozen=True)
class ArmComparison:
    """Arm `arm` against arm `other`, both measured against the same reference: the difference of their lifts.
    Revenue and buyers compare the two arms' customers directly (Welch, Newcombe). The conversion lift difference
    subtracts each arm's own offer reference (the holdout's ghost offers of its policy) and is `paired` when the
    holdout counted its customers converted under both references; unpaired, its interval is conservative. None
    when either arm's offer figures are not comparable with the holdout's."""

    arm: str
    other: str
    conversion_lift_difference: Lift | None
    paired: bool
    buyer_difference: Lift
    revenue_difference: Lift


@dataclass(frozen=True)
class ExperimentReport:
    """The whole report: one ArmReport per arm in the given order, lifts against `reference`, and the
    sample-ratio check (trust no lift when `srm_warning` is True)."""

    name: str
    reference: str  # the arm the lifts are measured against
    alpha: float
    srm_alpha: float
    total_customers: int
    arms: tuple[ArmReport, ...]
    srm_p_value: float | None  # chi-square goodness of fit of customers against the shares; None: not checkable
    srm_warning: bool | None  # srm_p_value < srm_alpha; None when there are no customers or only one arm
    # each later arm against each earlier one (neither the reference), in the given order
    comparisons: tuple[ArmComparison, ...] = ()

    def arm(self, name: str) -> ArmReport:
        for arm in self.arms:
            if arm.arm == name:
                return arm
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: floats to 6 significant digits, intervals as [low, high] lists, None kept."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


def experiment_report(
    name: str, arms: Sequence[ArmCounts], reference: str | None = None, alpha: float = 0.05, srm_alpha: float = 0.001,
    holdout_policy: str | None = None, offer_references: Mapping[str, ArmCounts] | None = None,
) -> ExperimentReport:
    """Each arm's figures and each non-reference arm's lifts against `reference` (default: the first arm whose
    policy is "holdout", else the first arm), and the sample-ratio check. `holdout_policy`: the policy whose
    offers a holdout reference records (the deployment's); an arm of another policy gets `offers_comparable`
    False (its conversion is of other items than the holdout's) unless `offer_references` has, for that arm, the
    holdout's ghost offers of the arm's own policy: its offer-based lifts are then measured against those.

    Degenerate cases do not raise:
    - an arm with 0 customers: its rates and means are None, and so are its lifts (estimate, interval, p);
    - revenue with fewer than 2 customers in an arm: the mean is given, its interval and the revenue lift's
      interval and p are None; zero variance in both arms: the interval collapses to the difference, (0, 0)
      with p = 1.0 when the means are equal, (d, d) with p = 0.0 when they differ;
    - 0 conversions in both arms (or all customers converted in both): the difference is 0 with Newcombe's
      interval (which still has width), the p-value is 1.0; the relative lift is None when the reference rate is 0
      (and its log-adjusted interval collapses to (0, 0) when everyone converted in both arms);
    - sample-ratio check: None (p and warning) with 0 customers in total or a single arm.
    Impossible counts (negative, converted customers or buyers above customers) raise ValueError, as do
    duplicate arm names, an unknown `reference` and alphas outside (0, 1).
    """
    if not arms:
        raise ValueError(f"experiment {name!r}: no arms")
    names = [a.arm for a in arms]
    if len(set(names)) != len(names):
        raise ValueError(f"experiment {name!r}: duplicate arm names {names}")
    for level in (alpha, srm_alpha):
        if not 0 < level < 1:
            raise ValueError(f"alpha must be in (0, 1), got {level!r}")
    for a in arms:
        _check(a)
    if reference is None:
        reference = next((a.arm for a in arms if a.policy == "holdout"), arms[0].arm)
    if reference not in names:
        raise ValueError(f"experiment {name!r}: reference arm {reference!r} is not one of {names}")
    ref = arms[names.index(reference)]

    total = sum(a.customers for a in arms)
    share_sum = sum(a.share for a in arms)
    shares = [a.share / share_sum for a in arms]
    srm_p = _srm_p_value([a.customers for a in arms], shares)

    reports = []
    for a, share in zip(arms, shares, strict=True):
        report = _arm_report(a, share, total * share, alpha)
        if a.arm != reference:
            ghost = (offer_references or {}).get(a.arm)
            report = _with_lifts(report, a, ref, alpha, ghost)
            if (ghost is None and ref.policy == "holdout" and holdout_policy is not None
                    and a.policy != holdout_policy):
                report = replace(report, offers_comparable=False)
        reports.append(report)
    others = [(a, r) for a, r in zip(arms, reports, strict=True) if a.arm != reference]
    comparisons = tuple(_comparison(later, earlier, ref, offer_references or {}, alpha)
                        for n, later in enumerate(others) for earlier in others[:n])
    return ExperimentReport(name=name, reference=reference, alpha=alpha, srm_alpha=srm_alpha, total_customers=total,
                            arms=tuple(reports), srm_p_value=srm_p,
                            srm_warning=None if srm_p is None else srm_p < srm_alpha, comparisons=comparisons)


def _comparison(later: tuple[ArmCounts, ArmReport], earlier: tuple[ArmCounts, ArmReport], ref: ArmCounts,
                offer_references: Mapping[str, ArmCounts], alpha: float) -> ArmComparison:
    (a, a_report), (b, b_report) = later, earlier
    conversion: Lift | None = None
    paired = False
    if ref.policy != "holdout":  # both lifts against one arm's customers: it cancels out of their difference
        conversion, _ = conversion_lifts(a.converted_customers, a.customers, b.converted_customers, b.customers,
                                         alpha)
        paired = True
    elif a_report.offers_comparable and b_report.offers_comparable:
        ghost_a, ghost_b = offer_references.get(a.arm, ref), offer_references.get(b.arm, ref)
        both = (ghost_a.converted_customers if ghost_a.arm == ghost_b.arm
                else ref.converted_both.get(both_field(ghost_a.arm, ghost_b.arm)))
        paired = both is not None
        conversion = lift_difference(a.converted_customers, a.customers, ghost_a.converted_customers,
                                     b.converted_customers, b.customers, ghost_b.converted_customers, both,
                                     ref.customers, alpha)
    buyers, _ = conversion_lifts(a.buyers, a.customers, b.buyers, b.customers, alpha)
    revenue = welch_lift(a.revenue, a.revenue_sq, a.customers, b.revenue, b.revenue_sq, b.customers, alpha)
    return ArmComparison(a.arm, b.arm, conversion, paired, buyers, revenue)


# -- per arm ---------------------------------------------------------------------------------------------------


def _check(a: ArmCounts) -> None:
    for name in _INT_FIELDS:
        if getattr(a, name) < 0:
            raise ValueError(f"arm {a.arm!r}: {name} is negative ({getattr(a, name)})")
    for name in ("converted_customers", "buyers"):
        if getattr(a, name) > a.customers:
            raise ValueError(f"arm {a.arm!r}: {name} ({getattr(a, name)}) exceeds customers ({a.customers})")


def _arm_report(a: ArmCounts, share: float, expected: float, alpha: float) -> ArmReport:
    n = a.customers
    feedback = {name: int(getattr(a, name)) for name in FEEDBACK}
    conversion_interval = None
    if n > 0:
        low, high = proportion.proportion_confint(a.converted_customers, n, alpha=alpha, method="wilson")
        conversion_interval = (float(low), float(high))
    revenue_mean, revenue_interval = _mean_interval(a.revenue, a.revenue_sq, n, alpha)
    attributed_mean, attributed_interval = _mean_interval(a.attributed_revenue, a.attributed_revenue_sq, n, alpha)
    return ArmReport(
        arm=a.arm, policy=a.policy, share=share, customers=n, expected_customers=expected, offers=a.offers,
        published=a.published, feedback=feedback,
        feedback_rates={name: _ratio(count, a.published) for name, count in feedback.items()},
        converted_offers=a.converted_offers, offer_conversion_rate=_ratio(a.converted_offers, a.offers),
        converted_customers=a.converted_customers, conversion_rate=_ratio(a.converted_customers, n),
        conversion_interval=conversion_interval,
        revenue_per_customer=revenue_mean, revenue_interval=revenue_interval,
        attributed_revenue_per_customer=attributed_mean, attributed_revenue_interval=attributed_interval,
        buyers=a.buyers, buyer_rate=_ratio(a.buyers, n), outcomes=dict(a.outcomes),
    )


def _ratio(count: float, total: float) -> float | None:
    return count / total if total else None


def _mean_interval(total: float, total_sq: float, n: int, alpha: float) -> tuple[float | None, Interval | None]:
    if n == 0:
        return None, None
    mean = total / n
    if n < 2:
        return mean, None
    half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * math.sqrt(variance(total, total_sq, n) / n)
    return mean, (mean - half, mean + half)


# -- lifts -----------------------------------------------------------------------------------------------------


def _with_lifts(report: ArmReport, a: ArmCounts, ref: ArmCounts, alpha: float,
                offers_ref: ArmCounts | None = None) -> ArmReport:
    """`offers_ref`: the reference for the offer-based figures (conversion, attributed revenue), when it is not
    `ref` (the holdout's ghost offers of the arm's own policy)."""
    offers = offers_ref or ref
    conversion, relative = conversion_lifts(a.converted_customers, a.customers, offers.converted_customers,
                                            offers.customers, alpha)
    buyers, _ = conversion_lifts(a.buyers, a.customers, ref.buyers, ref.customers, alpha)
    return replace(
        report, conversion_lift=conversion, relative_conversion_lift=relative, buyer_lift=buyers,
        conversion_reference=offers.converted_customers / offers.customers if offers.customers else None,
        revenue_lift=welch_lift(a.revenue, a.revenue_sq, a.customers, ref.revenue, ref.revenue_sq, ref.customers,
                                 alpha),
        attributed_revenue_lift=welch_lift(a.attributed_revenue, a.attributed_revenue_sq, a.customers,
                                            offers.attributed_revenue, offers.attributed_revenue_sq, offers.customers,
                                            alpha))


def _srm_p_value(customers: Sequence[int], shares: Sequence[float]) -> float | None:
    total = sum(customers)
    if total == 0 or len(customers) < 2:
        return None
    expected = [total * share for share in shares]
    return float(stats.chisquare(customers, expected).pvalue)


# -- parsing and output ----------------------------------------------------------------------------------------


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _to_float(value: FieldValue, name: str) -> float:
    try:
        return float(_text(value) if isinstance(value, str | bytes) else value)
    except ValueError:
        raise ValueError(f"field {name!r}: not a number: {value!r}") from None


def _to_int(value: FieldValue, name: str) -> int:
    if isinstance(value, int):
        return value
    number = _to_float(value, name)  # "3" and "3.0" alike
    if not number.is_integer():
        raise ValueError(f"field {name!r}: not a whole count: {value!r}")
    return int(number)


def _round(x: float) -> float | None:
    return float(f"{x:.6g}") if math.isfinite(x) else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return _round(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    return float(value)  # numpy scalars


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}%}"


def _p(p: float | None) -> str:
    if p is None:
        return "p=n/a"
    if p < 0.0001:
        return "p<0.0001"
    return f"p={p:.4f}" if p < 0.001 else f"p={p:.3f}" if p < 0.1 else f"p={p:.2f}"


def _money(x: float | None) -> str:
    return "-" if x is None else f"{x:,.2f}"


def _conversion_cell(arm: ArmReport) -> str:
    if arm.conversion_rate is None or arm.conversion_interval is None:
        return "-"
    low, high = arm.conversion_interval
    return f"{arm.conversion_rate:.2%} [{low:.2%}, {high:.2%}]"


def _lift_line(label: str, lift: Lift | None, scale: float, unit: str, digits: int, why: str,
               with_p: bool = True) -> str:
    if lift is None or lift.estimate is None:
        return f"  {label:<24} n/a ({why})"
    line = f"  {label:<24} {lift.estimate * scale:+,.{digits}f}{unit}"
    bound = unit.strip() if unit == "%" else ""
    if lift.interval is not None:
        low, high = lift.interval
        line += f" [{low * scale:+,.{digits}f}{bound}, {high * scale:+,.{digits}f}{bound}]"
    else:
        line += " [no interval: fewer than 2 customers in an arm]"
    if with_p and lift.interval is not None:
        line += f"  {_p(lift.p_value)}"
    return line + ("  significant" if lift.significant else "  not significant")


# Columns after arm and policy: customers, offers, delivered/opened/clicked rates, converted, conversion, rev/cust.
_FIXED = 2 + 9 + 2 + 9 + 2 + 6 + 1 + 6 + 1 + 6 + 2 + 9 + 2 + 23 + 2 + 9


def _ghost_reference_note(arm: ArmReport, reference: ArmReport) -> str:
    """Where an arm's conversion lift is measured against the holdout's customers under the ghost offers of the
    arm's own policy, the rate it is measured against (else the holdout's row would seem to contradict it)."""
    rate = arm.conversion_reference
    if rate is None or not arm.offers_comparable or rate == reference.conversion_rate:
        return ""
    return f"  (conversion against {_pct(rate, 2)}: the {reference.arm}'s customers under {arm.policy}'s ghost offers)"


def format_report(report: ExperimentReport) -> str:
    """A plain-text table for a terminal: one line per arm, the lifts of each arm against the reference, and the
    sample-ratio check. No line is longer than 120 characters (very long arm or policy names are cut with ...).

    >>> holdout = ArmCounts("holdout", "holdout", 0.5, customers=1000, converted_customers=100)
    >>> nbo = ArmCounts("nbo", "nbo", 0.5, customers=1000, offers=2400, published=2400, delivered=2350, opened=900,
    ...                 clicked=300, converted_customers=130)
    >>> print(format_report(experiment_report("demo", [holdout, nbo])))  # doctest: +ELLIPSIS
    experiment demo: 2 arms, 2,000 customers, lifts against holdout, 95% intervals
    arm      policy   customers     offers   deliv   open  click  converted  conversion [95%]          rev/cust
    holdout  holdout      1,000          0       -      -      -        100  10.00% [8.29%, 12.02%]        0.00
    nbo      nbo          1,000      2,400   97.9%  37.5%  12.5%        130  13.00% [11.06%, 15.23%]       0.00
    nbo vs holdout:
      conversion               +3.00 pp [+0.20, +5.81]  p=0.036  significant
      relative conversion      +30.0% [+1.6%, +65.9%]  significant
    ...
    sample ratio: ok (p=1.00)
    """
    level = f"{1 - report.alpha:.0%}"
    pol_w = min(max(len("policy"), *(len(a.policy) for a in report.arms)), 12)
    arm_w = min(max(len("arm"), *(len(a.arm) for a in report.arms)), WIDTH - 2 - pol_w - _FIXED)
    header = (f"{'arm':<{arm_w}}  {'policy':<{pol_w}}  {'customers':>9}  {'offers':>9}  {'deliv':>6} {'open':>6} "
              f"{'click':>6}  {'converted':>9}  {'conversion [' + level + ']':<23}  {'rev/cust':>9}")
    lines = [f"experiment {report.name}: {len(report.arms)} arms, {report.total_customers:,} customers, "
             f"lifts against {report.reference}, {level} intervals", header]
    for a in report.arms:
        rates = a.feedback_rates
        lines.append(f"{_clip(a.arm, arm_w):<{arm_w}}  {_clip(a.policy, pol_w):<{pol_w}}  {a.customers:>9,}  "
                     f"{a.offers:>9,}  {_pct(rates['delivered']):>6} {_pct(rates['opened']):>6} "
                     f"{_pct(rates['clicked']):>6}  {a.converted_customers:>9,}  {_conversion_cell(a):<23}  "
                     f"{_money(a.revenue_per_customer):>9}")
    empty = "no customers in an arm"
    reference_arm = report.arm(report.reference)
    for a in report.arms:
        if a.arm == report.reference:
            continue
        ratio_why = empty if a.customers == 0 or a.conversion_lift is None or a.conversion_lift.estimate is None \
            else f"no conversions in {report.reference}"
        ghost = _ghost_reference_note(a, reference_arm)
        lines.append(f"{a.arm} vs {report.reference}:" + ("" if a.offers_comparable else
                     "  (offer figures not comparable: the holdout records another policy's offers)") + ghost)
        lines.append(_lift_line("conversion", a.conversion_lift, 100, " pp", 2, empty))
        lines.append(_lift_line("relative conversion", a.relative_conversion_lift, 100, "%", 1, ratio_why,
                                with_p=False))
        lines.append(_lift_line("buyers (any purchase)", a.buyer_lift, 100, " pp", 2, empty))
        lines.append(_lift_line("revenue per customer", a.revenue_lift, 1, "", 2, empty))
        lines.append(_lift_line("attributed rev/customer", a.attributed_revenue_lift, 1, "", 2, empty))
    for c in report.comparisons:
        lines.append(f"{c.arm} vs {c.other} (difference of their lifts):")
        how = "paired on the holdout's customers" if c.paired else "unpaired: conservative"
        lines.append(_lift_line("conversion lift", c.conversion_lift_difference, 100, " pp", 2,
                                "offer figures not comparable") + ("" if c.conversion_lift_difference is None
                                                                   else f"  ({how})"))
        lines.append(_lift_line("buyers (any purchase)", c.buyer_difference, 100, " pp", 2, empty))
        lines.append(_lift_line("revenue per customer", c.revenue_difference, 1, "", 2, empty))
    if report.srm_p_value is None:
        why = "no customers yet" if report.total_customers == 0 else "a single arm"
        lines.append(f"sample ratio: not checked ({why})")
    elif not report.srm_warning:
        lines.append(f"sample ratio: ok ({_p(report.srm_p_value)})")
    else:
        lines.append(f"SAMPLE RATIO MISMATCH: {_p(report.srm_p_value)} (threshold {report.srm_alpha:g}) — arm sizes "
                     "differ from the configured shares; do not trust the lifts")
        lines.extend(f"  {a.arm}: {a.customers:,} customers, expected {a.expected_customers:,.0f} "
                     f"(share {a.share:.1%})" for a in report.arms)
    return "\n".join(_clip(line, WIDTH) for line in lines)
