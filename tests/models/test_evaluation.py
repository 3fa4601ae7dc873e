import itertools

import orjson

from models.evaluation import evaluate
from models.evaluation.offers import hit_rate
from models.evaluation.outcomes import PurchaseTimes
from models.personalizer import Personalizer
from models.state import DAY
from schemas import parse_event
from streams.datasets.synthetic import SyntheticShop, history

LOG_START = 1_776_816_000.0  # 2026-04-22T00:00:00Z: a fixed start, so the figures are the same on every run


def test_hit_rate_counts_purchases_within_the_horizon_only() -> None:
    bought = {("c1", "a"): [10.0, 5 * DAY], ("c2", "b"): [100 * DAY]}
    offers = [("c1", "a", 0.0), ("c1", "a", 20.0), ("c2", "b", 0.0), ("c3", "z", 0.0)]
    # c1/a at 0 → bought at 10 (hit); at 20 → bought at 5 days (hit); c2/b 100 days later (miss); c3 never.
    assert hit_rate(offers, bought, horizon_s=7 * DAY) == 0.5
    assert hit_rate([], bought, horizon_s=DAY) == 0.0


def test_the_truth_is_a_purchase_after_the_moment_within_the_horizon() -> None:
    truth = PurchaseTimes({"c1": [10.0, 50.0]})
    assert truth.bought_within("c1", 10.0, 39.0) is False  # the moment's own purchase does not count
    assert truth.bought_within("c1", 10.0, 40.0) is True


def test_evaluation_scores_every_customer_against_what_they_did_beside_baselines() -> None:
    shop = SyntheticShop(n_customers=200, seed=3)
    events = [parse_event(kind, orjson.dumps(body)) for kind, body in history(shop, 40, LOG_START)]
    report = evaluate(Personalizer(), events, {c.customer_id: c.segment for c in shop.customers})
    assert report.events == len(events) and report.customers > 150 and report.timer_visits > 0
    assert report.offers["offers"] > 0 and report.offers["hit_rate"] > report.offers["popularity_hit_rate"]
    assert report.segments_ari is not None and report.segments_ari > 0.2
    dates = report.headline("propensity", "fixed_dates")
    # Every known customer is scored on each date, buyers and non-buyers alike: both labels occur.
    assert dates["engine"]["n"] >= 150 and 0 < dates["engine"]["positives"] < dates["engine"]["n"]
    assert dates["engine"]["roc_auc"] > 0.6 and dates["recency-only"]["roc_auc"] is not None
    assert 0.0 <= report.segment_change_rate < 0.5


def test_every_score_reports_its_models_day_to_day_stability_on_its_own_last_date() -> None:
    shop = SyntheticShop(n_customers=150, seed=4)
    events = [parse_event(kind, orjson.dumps(body)) for kind, body in history(shop, 50, LOG_START)]
    report = evaluate(Personalizer(), events, stability_days=5)
    assert set(report.stability) == {"propensity", "churn_risk"}
    for output, stability in report.stability.items():
        aucs = stability["roc_auc_by_day"]
        assert stability["days"] == len(aucs) == 6, output
        steps = [abs(b - a) for a, b in itertools.pairwise(aucs)]
        assert stability["largest_day_to_day_change"] == max(steps), output
        assert stability["range"] == max(aucs) - min(aucs), output
    # Each score is checked on a date whose truth the log holds: churn risk's (30 days) is earlier than
    # propensity's (7 days), so its customers differ in number.
    assert report.stability["churn_risk"]["customers"] < report.stability["propensity"]["customers"]
    # The propensity model has learned by then: its six days' models rank that date's customers better than a coin.
    assert min(report.stability["propensity"]["roc_auc_by_day"]) > 0.6
