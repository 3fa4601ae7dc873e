import time

import orjson

from models.evaluation import _hit_rate, evaluate
from models.personalizer import Personalizer
from models.state import DAY
from schemas import parse_event
from streams.datasets.synthetic import SyntheticShop, history


def test_hit_rate_counts_purchases_within_the_horizon_only() -> None:
    bought = {("c1", "a"): [10.0, 5 * DAY], ("c2", "b"): [100 * DAY]}
    offers = [("c1", "a", 0.0), ("c1", "a", 20.0), ("c2", "b", 0.0), ("c3", "z", 0.0)]
    # c1/a at 0 → bought at 10 (hit); at 20 → bought at 5 days (hit); c2/b 100 days later (miss); c3 never.
    assert _hit_rate(offers, bought, horizon=7 * DAY) == 0.5
    assert _hit_rate([], bought, horizon=DAY) == 0.0


def test_evaluation_on_a_small_synthetic_log_beats_popularity() -> None:
    shop = SyntheticShop(n_customers=150, seed=3)
    events = [parse_event(kind, orjson.dumps(body)) for kind, body in history(shop, 10, time.time() - 10 * DAY)]
    report = evaluate(Personalizer(), events, {c.customer_id: c.segment for c in shop.customers})
    assert report.events == len(events) and report.customers > 100
    assert report.offers > 0 and report.offer_hit_rate > report.baseline_hit_rate
    assert report.segments_ari is not None and report.segments_ari > 0.2
    assert report.propensity["labelled"] > 0
    assert 0.0 <= report.segment_change_rate < 0.5
