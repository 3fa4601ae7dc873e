import json
import math
import warnings
from typing import Any

import numpy as np
import pytest
from statsmodels.stats import proportion
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from models.experiments.lifts import conversion_lifts
from models.experiments.report import ArmCounts, ExperimentReport, experiment_report, format_report


def arm(name: str, share: float = 0.5, policy: str | None = None, **counts: Any) -> ArmCounts:
    return ArmCounts(name, policy or name, share, **counts)


def with_revenue(name: str, values: np.ndarray, share: float = 0.5, **counts: Any) -> ArmCounts:
    """An arm whose customers spent `values`: the engine keeps only their sum and sum of squares."""
    return arm(name, share, customers=len(values), revenue=float(values.sum()),
               revenue_sq=float((values**2).sum()), buyers=int((values > 0).sum()), **counts)


# -- parsing ---------------------------------------------------------------------------------------------------


def test_from_fields_parses_bytes_and_str_values_and_outcome_keys() -> None:
    stored: dict[str, str | bytes | int] = {
        "customers": b"120", "offers": "300", "published": b"290", "delivered": "288", "clicked": b"40",
        "converted_offers": "21", "converted_customers": b"18", "revenue": b"1234.5", "revenue_sq": "98765.25",
        "attributed_revenue": b"310", "buyers": "30.0", "outcome:converted": b"21", "outcome:expired": "200",
        "outcome:ignored": 60, "unknown": b"9", "outcome:": "5"}
    counts = ArmCounts.from_fields("nbo", "nbo", 0.5, stored)
    assert (counts.arm, counts.policy, counts.share) == ("nbo", "nbo", 0.5)
    assert (counts.customers, counts.offers, counts.published, counts.delivered, counts.clicked) == (120, 300, 290,
                                                                                                     288, 40)
    assert (counts.converted_offers, counts.converted_customers, counts.buyers) == (21, 18, 30)
    assert counts.revenue == 1234.5 and counts.revenue_sq == 98765.25 and counts.attributed_revenue == 310.0
    assert counts.opened == 0 and counts.attributed_revenue_sq == 0.0  # missing keys are 0
    assert dict(counts.outcomes) == {"converted": 21, "expired": 200, "ignored": 60}
    assert isinstance(counts.customers, int) and isinstance(counts.revenue, float)
    # A client without decode_responses returns bytes keys too.
    raw = {key.encode(): value for key, value in stored.items()}
    assert ArmCounts.from_fields("nbo", "nbo", 0.5, raw) == counts


def test_from_fields_of_an_empty_hash_is_all_zero_and_bad_values_raise() -> None:
    empty = ArmCounts.from_fields("holdout", "holdout", 0.1, {})
    assert empty == ArmCounts("holdout", "holdout", 0.1)
    with pytest.raises(ValueError, match="customers"):
        ArmCounts.from_fields("a", "a", 0.5, {"customers": "2.5"})
    with pytest.raises(ValueError, match="revenue"):
        ArmCounts.from_fields("a", "a", 0.5, {"revenue": b"lots"})
    with pytest.raises(ValueError, match="share"):
        ArmCounts("a", "a", 0.0)


# -- the figures against the reference implementations --------------------------------------------------------


def test_reference_is_the_holdout_by_default_then_the_first_arm() -> None:
    assert experiment_report("e", [arm("nbo", customers=10), arm("holdout", customers=10)]).reference == "holdout"
    assert experiment_report("e", [arm("nbo", customers=10), arm("pop", customers=10)]).reference == "nbo"
    report = experiment_report("e", [arm("nbo", customers=10), arm("holdout", customers=10)], reference="nbo")
    assert report.arm("nbo").conversion_lift is None and report.arm("holdout").conversion_lift is not None
    with pytest.raises(ValueError, match="reference"):
        experiment_report("e", [arm("nbo", customers=10)], reference="missing")


def test_per_arm_rates_and_the_wilson_interval() -> None:
    nbo = arm("nbo", customers=2000, offers=5000, published=4800, delivered=4700, opened=1900, clicked=600,
              converted_offers=400, converted_customers=260, buyers=500)
    holdout = arm("holdout", customers=2000, offers=5100, converted_offers=310, converted_customers=200)
    report = experiment_report("e", [holdout, nbo])
    a = report.arm("nbo")
    assert a.conversion_rate == 0.13 and a.offer_conversion_rate == 0.08 and a.buyer_rate == 0.25
    assert a.feedback_rates["delivered"] == 4700 / 4800 and a.feedback_rates["clicked"] == 600 / 4800
    assert a.conversion_interval == pytest.approx(proportion.proportion_confint(260, 2000, method="wilson"))
    h = report.arm("holdout")
    assert h.feedback_rates["opened"] is None and h.offer_conversion_rate == 310 / 5100  # nothing published


def test_conversion_lift_agrees_with_statsmodels() -> None:
    report = experiment_report("e", [arm("holdout", customers=4000, converted_customers=400),
                                     arm("nbo", customers=3900, converted_customers=470)])
    lift = report.arm("nbo").conversion_lift
    assert lift is not None and lift.estimate == pytest.approx(470 / 3900 - 0.1)
    expected = proportion.confint_proportions_2indep(470, 3900, 400, 4000, compare="diff", method="newcomb")
    assert lift.interval == pytest.approx(expected)
    # The p-value is the test the interval inverts: at alpha = p its lower bound is 0 (and it stays within a few
    # per cent of the score test's on counts like these).
    assert lift.p_value is not None
    at_p = proportion.confint_proportions_2indep(470, 3900, 400, 4000, compare="diff", method="newcomb",
                                                 alpha=lift.p_value)
    assert at_p[0] == pytest.approx(0.0, abs=1e-9)
    test = proportion.test_proportions_2indep(470, 3900, 400, 4000, compare="diff", method="score")
    assert lift.p_value == pytest.approx(test.pvalue, rel=0.05)
    assert lift.interval is not None and lift.interval[0] > 0 and lift.significant  # lower bound ~ +0.7 pp
    relative = report.arm("nbo").relative_conversion_lift
    ratio = proportion.confint_proportions_2indep(470, 3900, 400, 4000, compare="ratio", method="log-adjusted")
    assert relative is not None and relative.estimate == pytest.approx((470 / 3900) / 0.1 - 1)
    assert relative.interval == pytest.approx((ratio[0] - 1, ratio[1] - 1))


def test_the_conversion_p_value_and_interval_never_disagree() -> None:
    # A score test's p read 0.047 beside a Newcombe interval of [-0.01, +13.31] pp in the demo: "p=0.047 not
    # significant". Over many counts near the boundary, p < alpha exactly when the interval excludes 0.
    rng = np.random.default_rng(3)
    checked = 0
    for _ in range(3000):
        n1, n2 = int(rng.integers(5, 400)), int(rng.integers(5, 400))
        c1, c2 = int(rng.binomial(n1, 0.3)), int(rng.binomial(n2, 0.3 + rng.normal(0, 0.08)))
        for alpha in (0.05, 0.1):
            lift, _ = conversion_lifts(c1, n1, c2, n2, alpha)
            assert lift.p_value is not None
            if abs(lift.p_value - alpha) < 1e-9:
                continue  # on the boundary itself either reading is right
            assert (lift.p_value < alpha) == lift.significant, (c1, n1, c2, n2, alpha, lift)
            checked += 1
    assert checked > 5000


def test_alpha_sets_the_confidence_of_every_interval() -> None:
    arms = [arm("holdout", customers=1000, converted_customers=100),
            arm("nbo", customers=1000, converted_customers=125)]
    wide, narrow = experiment_report("e", arms, alpha=0.01), experiment_report("e", arms, alpha=0.2)
    wide_lift, narrow_lift = wide.arm("nbo").conversion_lift, narrow.arm("nbo").conversion_lift
    assert wide_lift is not None and narrow_lift is not None and wide_lift.interval and narrow_lift.interval
    assert wide_lift.interval[0] < narrow_lift.interval[0] and not wide_lift.significant and narrow_lift.significant


def test_welch_revenue_lift_agrees_with_statsmodels_on_the_raw_data() -> None:
    rng = np.random.default_rng(7)
    # Skewed spend, most customers spend nothing; the arms differ in variance.
    holdout = rng.lognormal(3.0, 1.0, 800) * (rng.random(800) < 0.3)
    nbo = rng.lognormal(3.2, 1.3, 700) * (rng.random(700) < 0.35)
    report = experiment_report("e", [with_revenue("holdout", holdout), with_revenue("nbo", nbo)])
    lift = report.arm("nbo").revenue_lift
    compare = CompareMeans(DescrStatsW(nbo), DescrStatsW(holdout))
    _, p, _ = compare.ttest_ind(usevar="unequal")
    assert lift is not None and lift.estimate == pytest.approx(nbo.mean() - holdout.mean())
    assert lift.interval == pytest.approx(compare.tconfint_diff(usevar="unequal"), rel=1e-9)
    assert lift.p_value == pytest.approx(p, rel=1e-9)
    revenue = report.arm("holdout")
    assert revenue.revenue_per_customer == pytest.approx(holdout.mean())
    assert revenue.revenue_interval == pytest.approx(DescrStatsW(holdout).tconfint_mean(), rel=1e-9)


def test_attributed_revenue_lift_uses_the_attributed_sums() -> None:
    rng = np.random.default_rng(11)
    a, b = rng.exponential(5.0, 300), rng.exponential(8.0, 400)
    arms = [arm("holdout", customers=300, attributed_revenue=float(a.sum()), attributed_revenue_sq=float((a**2).sum())),
            arm("nbo", customers=400, attributed_revenue=float(b.sum()), attributed_revenue_sq=float((b**2).sum()))]
    report = experiment_report("e", arms)
    lift = report.arm("nbo").attributed_revenue_lift
    compare = CompareMeans(DescrStatsW(b), DescrStatsW(a))
    assert lift is not None and lift.interval == pytest.approx(compare.tconfint_diff(usevar="unequal"), rel=1e-9)
    assert lift.p_value == pytest.approx(compare.ttest_ind(usevar="unequal")[1], rel=1e-9) and lift.significant
    assert report.arm("nbo").attributed_revenue_per_customer == pytest.approx(b.mean())


# -- degenerate cases ------------------------------------------------------------------------------------------


def no_warnings_report(arms: list[ArmCounts]) -> ExperimentReport:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = experiment_report("e", arms)
    json.dumps(report.to_dict(), allow_nan=False)
    assert all(len(line) <= 120 for line in format_report(report).splitlines())
    return report


def test_arms_without_customers_do_not_raise() -> None:
    report = no_warnings_report([arm("holdout"), arm("nbo")])
    nbo = report.arm("nbo")
    assert nbo.conversion_rate is None and nbo.conversion_interval is None and nbo.revenue_per_customer is None
    assert nbo.conversion_lift is not None and nbo.conversion_lift.estimate is None
    assert nbo.revenue_lift is not None and nbo.revenue_lift.interval is None and not nbo.revenue_lift.significant
    assert report.srm_p_value is None and report.srm_warning is None
    one_sided = no_warnings_report([arm("holdout", customers=50, converted_customers=5), arm("nbo")])
    lift = one_sided.arm("nbo").conversion_lift
    assert lift is not None and lift.estimate is None and lift.interval is None and not lift.significant


def test_no_conversions_and_no_revenue_in_either_arm() -> None:
    report = no_warnings_report([arm("holdout", customers=1000), arm("nbo", customers=1000)])
    nbo = report.arm("nbo")
    lift, relative, revenue = nbo.conversion_lift, nbo.relative_conversion_lift, nbo.revenue_lift
    assert lift is not None and lift.estimate == 0 and lift.p_value == 1.0 and not lift.significant
    assert lift.interval is not None and lift.interval[0] < 0 < lift.interval[1]  # still uncertain, not (0, 0)
    assert relative is not None and relative.estimate is None  # ratio over a reference rate of 0
    assert revenue is not None and revenue.interval == (0.0, 0.0) and revenue.p_value == 1.0
    assert nbo.revenue_interval == (0.0, 0.0)
    everyone = no_warnings_report([arm("holdout", customers=200, converted_customers=200),
                                   arm("nbo", customers=200, converted_customers=200)])
    all_converted = everyone.arm("nbo").conversion_lift
    assert all_converted is not None and all_converted.estimate == 0 and all_converted.p_value == 1.0


def test_single_customers_and_constant_revenue() -> None:
    report = no_warnings_report([arm("holdout", customers=1, revenue=10.0, revenue_sq=100.0),
                                 arm("nbo", customers=1, converted_customers=1, revenue=20.0, revenue_sq=400.0)])
    nbo = report.arm("nbo")
    assert nbo.revenue_per_customer == 20.0 and nbo.revenue_interval is None
    assert nbo.revenue_lift is not None and nbo.revenue_lift.estimate == 10.0 and nbo.revenue_lift.interval is None
    assert nbo.revenue_lift.p_value is None and not nbo.revenue_lift.significant
    # Everyone spent exactly 10 (holdout) or 12 (nbo): no variance, the difference is exact.
    constant = no_warnings_report([arm("holdout", customers=50, revenue=500.0, revenue_sq=5000.0),
                                   arm("nbo", customers=40, revenue=480.0, revenue_sq=5760.0)])
    lift = constant.arm("nbo").revenue_lift
    assert lift is not None and lift.interval == pytest.approx((2.0, 2.0)) and lift.p_value == 0.0
    # Zero conversions in the arm, some in the reference: the relative lift is -100%.
    drop = no_warnings_report([arm("holdout", customers=500, converted_customers=20), arm("nbo", customers=500)])
    relative = drop.arm("nbo").relative_conversion_lift
    assert relative is not None and relative.estimate == -1.0 and relative.interval is not None


def test_impossible_counts_raise() -> None:
    with pytest.raises(ValueError, match="exceeds customers"):
        experiment_report("e", [arm("holdout", customers=5, converted_customers=6)])
    with pytest.raises(ValueError, match="duplicate"):
        experiment_report("e", [arm("a", customers=5), arm("a", customers=5)])


# -- sample ratio ----------------------------------------------------------------------------------------------


def test_sample_ratio_mismatch_flags_5000_vs_4000_not_5000_vs_5050() -> None:
    bad = experiment_report("e", [arm("holdout", customers=5000), arm("nbo", customers=4000)])
    assert bad.srm_warning is True and bad.srm_p_value is not None and bad.srm_p_value < 1e-20
    assert "SAMPLE RATIO MISMATCH" in format_report(bad)
    good = experiment_report("e", [arm("holdout", customers=5000), arm("nbo", customers=5050)])
    assert good.srm_warning is False and good.srm_p_value == pytest.approx(0.618, abs=1e-3)
    assert "sample ratio: ok (p=0.62)" in format_report(good)


def test_sample_ratio_renormalises_shares_and_uses_them() -> None:
    # Shares of 0.2, 0.9, 0.9 do not sum to 1: they count as 0.1, 0.45, 0.45.
    arms = [arm("holdout", 0.2, customers=1920), arm("nbo", 0.9, customers=8500), arm("pop", 0.9, customers=8580)]
    report = experiment_report("e", arms)
    assert [a.share for a in report.arms] == pytest.approx([0.1, 0.45, 0.45])
    assert report.arm("holdout").expected_customers == pytest.approx(1900) and report.srm_warning is False
    skewed = experiment_report("e", [arm("holdout", 0.1, customers=1000), arm("nbo", 0.9, customers=1000)])
    assert skewed.srm_warning is True


# -- coverage: the intervals mean what they say ---------------------------------------------------------------


def lift_intervals(p_holdout: float, p_arm: float, seed: int, draws: int = 200, n: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    holdout, treated = rng.binomial(n, p_holdout, draws), rng.binomial(n, p_arm, draws)
    intervals = []
    for h, t in zip(holdout, treated, strict=True):
        report = experiment_report("aa", [arm("holdout", customers=n, converted_customers=int(h)),
                                          arm("nbo", customers=n, converted_customers=int(t))])
        lift = report.arm("nbo").conversion_lift
        assert lift is not None and lift.interval is not None
        assert lift.significant == (lift.interval[0] > 0 or lift.interval[1] < 0)
        intervals.append(lift.interval)
    return np.array(intervals)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_aa_experiments_rarely_look_significant(seed: int) -> None:
    intervals = lift_intervals(0.10, 0.10, seed)
    excludes_zero = (intervals[:, 0] > 0) | (intervals[:, 1] < 0)
    assert excludes_zero.mean() <= 0.10  # nominal 5%
    assert ((intervals[:, 0] <= 0) & (intervals[:, 1] >= 0)).mean() >= 0.90


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_intervals_cover_a_planted_difference(seed: int) -> None:
    intervals = lift_intervals(0.10, 0.13, seed)
    assert ((intervals[:, 0] <= 0.03) & (intervals[:, 1] >= 0.03)).mean() >= 0.90  # nominal 95%
    assert (intervals[:, 0] > 0).mean() > 0.75  # and the lift is usually found (power ~ 0.85 at n = 2000)


# -- output ----------------------------------------------------------------------------------------------------


def test_format_report_names_every_arm_within_120_columns() -> None:
    arms = [arm("holdout", 0.1, customers=1000, offers=2400, converted_offers=90, converted_customers=80,
                revenue=25_000.0, revenue_sq=4_000_000.0, buyers=200),
            arm("nbo", 0.45, customers=4600, offers=11_000, published=10_900, delivered=10_700, opened=4000,
                clicked=1200, converted_customers=520, revenue=130_000.0, revenue_sq=21_000_000.0, buyers=1000),
            arm("popular-items-baseline", 0.45, policy="popular", customers=4400, offers=10_000, published=9900,
                delivered=9800, opened=3000, clicked=800, converted_customers=410, revenue=110_000.0,
                revenue_sq=19_000_000.0, buyers=900)]
    report = experiment_report("spring", arms)
    text = format_report(report)
    for a in arms:
        assert a.arm in text
    assert all(len(line) <= 120 for line in text.splitlines())
    assert "nbo vs holdout" in text and "pp" in text and "sample ratio: ok" in text
    long_names = experiment_report("e", [arm("h" * 70, policy="holdout", customers=10),
                                         arm("n" * 90, policy="p" * 40, customers=10)])
    assert all(len(line) <= 120 for line in format_report(long_names).splitlines())


def test_to_dict_is_json_ready_and_rounded() -> None:
    report = experiment_report("e", [arm("holdout", customers=3000, converted_customers=301),
                                     arm("nbo", customers=3000, converted_customers=377)])
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    nbo = data["arms"][1]
    assert data["reference"] == "holdout" and nbo["arm"] == "nbo" and data["arms"][0]["conversion_lift"] is None
    assert nbo["conversion_rate"] == 0.125667 and len(nbo["conversion_interval"]) == 2
    assert set(nbo["conversion_lift"]) == {"estimate", "interval", "p_value", "significant"}
    assert nbo["relative_conversion_lift"]["significant"] is True
    assert math.isclose(nbo["conversion_lift"]["estimate"], 76 / 3000, rel_tol=1e-5)
    assert nbo["feedback_rates"]["delivered"] is None


def test_arms_of_another_policy_than_the_holdout_s_compare_buyers_and_revenue_not_offers() -> None:
    holdout = ArmCounts("holdout", "holdout", 1 / 3, customers=900, converted_customers=300, buyers=400)
    nbo = ArmCounts("nbo", "nbo", 1 / 3, customers=900, converted_customers=420, buyers=450)
    popular = ArmCounts("popular", "popular", 1 / 3, customers=900, converted_customers=100, buyers=480)
    report = experiment_report("x", [holdout, nbo, popular], holdout_policy="nbo")
    assert report.arm("nbo").offers_comparable and not report.arm("popular").offers_comparable
    buyers = report.arm("popular").buyer_lift
    assert buyers is not None and buyers.estimate == pytest.approx(80 / 900) and buyers.significant
    assert "offer figures not comparable" in format_report(report)


def test_a_ghost_reference_makes_another_policy_s_offer_figures_comparable() -> None:
    holdout = ArmCounts("holdout", "holdout", 0.5, customers=900, converted_customers=300, buyers=400)
    popular = ArmCounts("popular", "popular", 0.5, customers=900, converted_customers=100, buyers=480)
    ghost = ArmCounts("holdout", "holdout", 0.5, customers=900, converted_customers=40, buyers=400)
    report = experiment_report("x", [holdout, popular], holdout_policy="nbo", offer_references={"popular": ghost})
    arm = report.arm("popular")
    assert arm.offers_comparable and arm.conversion_lift is not None
    assert arm.conversion_lift.estimate == pytest.approx(60 / 900)  # against the ghost's 40, not the holdout's 300
    assert arm.buyer_lift is not None and arm.buyer_lift.estimate == pytest.approx(80 / 900)
    # The table says what the lift is against: popular's 11.11% is below the holdout's row (33.33%), yet its lift
    # is +6.67 pp, against the holdout's customers under popular's ghost offers.
    text = format_report(report)
    assert "popular vs holdout:  (conversion against 4.44%: the holdout's customers under popular's ghost offers)" \
        in text.splitlines()
    assert "conversion against" not in format_report(experiment_report("x", [holdout, popular]))


# -- one arm against another -------------------------------------------------------------------------------------


def test_two_arms_are_compared_by_the_difference_of_their_lifts_paired_on_the_holdout() -> None:
    holdout = arm("holdout", 0.2, policy="holdout", customers=1_000, converted_customers=700, buyers=800,
                  converted_both={"converted_both:holdout|holdout@learned": 600})
    nbo = arm("nbo", 0.4, customers=2_000, converted_customers=1_990, buyers=1_700, revenue=9_000.0,
              revenue_sq=90_000.0)
    learned = arm("learned", 0.4, customers=2_000, converted_customers=1_985, buyers=1_720, revenue=8_000.0,
                  revenue_sq=80_000.0)
    ghost = ArmCounts.from_fields("holdout@learned", "holdout", 0.2, {"converted_customers": "640"})
    reference = ArmCounts("holdout@learned", "holdout", 0.2, customers=1_000, converted_customers=640,
                          converted_both=holdout.converted_both)
    assert ghost.converted_customers == reference.converted_customers
    report = experiment_report("x", [holdout, nbo, learned], holdout_policy="nbo",
                               offer_references={"learned": reference})
    (comparison,) = report.comparisons
    assert (comparison.arm, comparison.other, comparison.paired) == ("learned", "nbo", True)
    lift = comparison.conversion_lift_difference
    assert lift is not None and lift.estimate is not None and lift.interval is not None
    # learned: 99.25% - 64% = 35.25 pp; nbo: 99.5% - 70% = 29.5 pp
    assert lift.estimate == pytest.approx(0.0575)
    assert lift.estimate == pytest.approx(report.arm("learned").conversion_lift.estimate  # type: ignore[union-attr]
                                          - report.arm("nbo").conversion_lift.estimate)  # type: ignore[union-attr]
    assert lift.significant
    unpaired = experiment_report("x", [replace_both(holdout), nbo, learned], holdout_policy="nbo",
                                 offer_references={"learned": replace_both(reference)}).comparisons[0]
    width = lift.interval[1] - lift.interval[0]
    assert not unpaired.paired and unpaired.conversion_lift_difference is not None
    assert unpaired.conversion_lift_difference.interval is not None
    assert unpaired.conversion_lift_difference.interval[1] - unpaired.conversion_lift_difference.interval[0] > width
    assert comparison.revenue_difference.estimate == pytest.approx(-0.5)  # 4.00 against 4.50 per customer
    assert comparison.buyer_difference.estimate == pytest.approx(0.01)
    text = format_report(report)
    assert "learned vs nbo (difference of their lifts):" in text
    assert "  conversion lift          +5.75 pp [" in text and "(paired on the holdout's customers)" in text
    assert json.loads(json.dumps(report.to_dict()))["comparisons"][0]["paired"] is True


def replace_both(counts: ArmCounts) -> ArmCounts:
    """As counted by an engine that did not count the pairs."""
    return ArmCounts(counts.arm, counts.policy, counts.share, customers=counts.customers,
                     converted_customers=counts.converted_customers, buyers=counts.buyers)


def test_an_arm_whose_offers_the_holdout_did_not_record_has_no_conversion_difference() -> None:
    holdout = arm("holdout", 0.2, policy="holdout", customers=100, converted_customers=30)
    report = experiment_report("x", [holdout, arm("nbo", 0.4, customers=200, converted_customers=90),
                                     arm("popular", 0.4, customers=200, converted_customers=80)],
                               holdout_policy="nbo")
    (comparison,) = report.comparisons
    assert comparison.conversion_lift_difference is None
    assert "conversion lift          n/a (offer figures not comparable)" in format_report(report)


def test_arms_of_the_holdout_s_policy_compare_without_the_holdout_s_term() -> None:
    """Both against the same reference: its sampling noise cancels, so only the arms' own counts matter."""
    holdout = arm("holdout", 0.2, policy="holdout", customers=100, converted_customers=30)
    a, b = arm("a", 0.4, policy="nbo", customers=2_000, converted_customers=900), arm(
        "b", 0.4, policy="nbo", customers=2_000, converted_customers=1_000)
    (comparison,) = experiment_report("x", [holdout, a, b], holdout_policy="nbo").comparisons
    direct, _ = (proportion.confint_proportions_2indep(1_000, 2_000, 900, 2_000, compare="diff", method="wald"), None)
    lift = comparison.conversion_lift_difference
    assert lift is not None and lift.interval is not None and comparison.paired
    assert lift.interval == pytest.approx(direct, abs=1e-9)
