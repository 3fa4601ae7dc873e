"""Progressive evaluation of the personalizer on a labelled event log, in event-time order.

- segments: adjusted Rand index between each customer's final segment and the planted one;
- propensity: progressive ROC AUC and log loss of the delayed-label model, and calibration by decile;
- offers: hit rate (the offered item bought by that customer within the horizon) against a popularity
  baseline that offers, at the same moments, the most popular item the customer did not just buy.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from river import metrics

from models.learners.cooccurrence import ItemCooccurrence
from models.learners.segments import SegmentModel
from models.personalizer import Personalizer
from models.state import DAY, CustomerState
from schemas.events import ClickEvent, PurchaseEvent


@dataclass
class EvaluationReport:
    events: int = 0
    customers: int = 0
    segments_ari: float | None = None
    propensity: dict[str, float] = field(default_factory=dict)
    calibration: list[dict[str, float]] = field(default_factory=list)
    segment_change_rate: float = 0.0  # share of a customer's events that moved them to another segment
    offers: int = 0
    offer_hit_rate: float = 0.0
    baseline_hit_rate: float = 0.0

    @property
    def lift_over_baseline(self) -> float:
        return self.offer_hit_rate / self.baseline_hit_rate if self.baseline_hit_rate else float("inf")

    def as_dict(self) -> dict[str, Any]:
        return {"events": self.events, "customers": self.customers, "segments_ari": self.segments_ari,
                "segment_change_rate": self.segment_change_rate, "propensity": self.propensity,
                "calibration": self.calibration, "offers": self.offers,
                "offer_hit_rate": self.offer_hit_rate, "baseline_hit_rate": self.baseline_hit_rate,
                "lift_over_baseline": self.lift_over_baseline}


def evaluate(personalizer: Personalizer, events: Iterable[ClickEvent | PurchaseEvent],
             planted_segments: Mapping[str, int] | None = None, horizon_days: float = 7.0) -> EvaluationReport:
    report = EvaluationReport()
    states: dict[str, CustomerState] = {}
    offered: list[tuple[str, str, float]] = []  # customer, item, ts
    baseline: list[tuple[str, str, float]] = []
    bought: dict[tuple[str, str], list[float]] = defaultdict(list)
    predictions: list[tuple[str, float, float]] = []  # (customer, ts, p) for calibration, labelled at the end
    purchase_times: dict[str, list[float]] = defaultdict(list)

    last_ts = float("-inf")
    last_segment: dict[str, int | None] = {}
    segment_changes = repeat_events = 0
    items = cast(ItemCooccurrence, personalizer.learner("cooccurrence"))
    exclude_days = personalizer.guardrails.exclude_days
    for event in events:
        report.events += 1
        last_ts = max(last_ts, event.epoch)
        state = states.setdefault(event.customer_id, CustomerState(event.customer_id))
        outcome = personalizer.process(state, event)
        if isinstance(event, PurchaseEvent):
            purchase_times[event.customer_id].append(event.epoch)
            for line in event.lines:
                bought[(event.customer_id, line.item_id)].append(event.epoch)
        previous = last_segment.get(event.customer_id)
        if previous is not None:
            repeat_events += 1
            segment_changes += previous != outcome.segment
        last_segment[event.customer_id] = outcome.segment
        if outcome.decision is not None:
            offered.append((event.customer_id, outcome.decision.item_id, event.epoch))
            popular = next((item for item in items.popular(k=20)
                            if not state.purchased_recently(item, event.epoch, exclude_days)), None)
            if popular is not None:
                baseline.append((event.customer_id, popular, event.epoch))
        if outcome.propensity is not None:
            predictions.append((event.customer_id, event.epoch, outcome.propensity))

    report.customers = len(states)
    report.segment_change_rate = segment_changes / repeat_events if repeat_events else 0.0
    horizon = horizon_days * DAY
    # Right-censoring: whatever happened after the log ends is unknown, so moments closer than one horizon
    # to the end are not scored (they would all count as misses).
    cutoff = last_ts - horizon
    offered = [o for o in offered if o[2] <= cutoff]
    baseline = [b for b in baseline if b[2] <= cutoff]
    predictions = [p for p in predictions if p[1] <= cutoff]
    report.offers = len(offered)
    report.offer_hit_rate = _hit_rate(offered, bought, horizon)
    report.baseline_hit_rate = _hit_rate(baseline, bought, horizon)
    report.propensity = dict(personalizer.metrics().get("propensity", {}))
    report.calibration, report.propensity["expected_calibration_error"] = _calibration(
        predictions, purchase_times, horizon)
    if planted_segments:
        ari = metrics.AdjustedRand()
        segments = cast(SegmentModel, personalizer.learner("segments"))
        # Every customer's segment under the final model, from their final features.
        for customer, state in states.items():
            if customer in planted_segments:
                x = personalizer.space.features(state, state.last_event_ts)
                ari.update(planted_segments[customer], segments.predict_one(x))
        report.segments_ari = float(ari.get())
    return report


def _calibration(predictions: list[tuple[str, float, float]], purchase_times: Mapping[str, list[float]],
                 horizon: float, bins: int = 10) -> tuple[list[dict[str, float]], float]:
    """Mean predicted propensity against the observed purchase rate within the horizon, by predicted decile."""
    sums = [[0.0, 0.0, 0] for _ in range(bins)]  # predicted, observed, count
    for customer, ts, p in predictions:
        times = purchase_times.get(customer, [])
        i = bisect.bisect_right(times, ts)
        bought = i < len(times) and times[i] - ts <= horizon
        b = sums[min(bins - 1, int(p * bins))]
        b[0] += p
        b[1] += bought
        b[2] += 1
    table = [{"from": k / bins, "to": (k + 1) / bins, "predicted": b[0] / b[2], "observed": b[1] / b[2],
              "count": float(b[2])} for k, b in enumerate(sums) if b[2]]
    total = sum(row["count"] for row in table)
    ece = sum(row["count"] / total * abs(row["predicted"] - row["observed"]) for row in table) if total else 0.0
    return table, ece


def _hit_rate(offers: list[tuple[str, str, float]], bought: Mapping[tuple[str, str], list[float]],
              horizon: float) -> float:
    if not offers:
        return 0.0
    hits = 0
    for customer, item, ts in offers:
        times = bought.get((customer, item), [])
        i = bisect.bisect_right(times, ts)
        hits += i < len(times) and times[i] - ts <= horizon
    return hits / len(offers)
