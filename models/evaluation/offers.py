"""Offers against what customers bought: the hit rate (the offered item bought by that customer within the
horizon) and, at the same moments, a popularity baseline (the most popular item the customer did not just
buy). Moments within one horizon of the log's end are not scored: their outcome is unknown.
"""

from __future__ import annotations

import bisect
from typing import Any, cast

from models.evaluation.outcomes import PurchaseTimes
from models.learners.cooccurrence import ItemCooccurrence
from models.personalizer import Outcome, Personalizer
from models.state import DAY, CustomerState
from schemas.events import ClickEvent, PurchaseEvent


class OfferHits:
    def __init__(self, personalizer: Personalizer, truth: PurchaseTimes, horizon_days: float = 7.0) -> None:
        self.personalizer = personalizer
        self.horizon_s = horizon_days * DAY
        self.offered: list[tuple[str, str, float]] = []  # customer, item, ts
        self.baseline: list[tuple[str, str, float]] = []
        self.bought: dict[tuple[str, str], list[float]] = {}

    def add(self, event: ClickEvent | PurchaseEvent, state: CustomerState, outcome: Outcome) -> None:
        if isinstance(event, PurchaseEvent):
            for line in event.lines:
                self.bought.setdefault((event.customer_id, line.item_id), []).append(event.epoch)
        if outcome.decision is None:
            return
        self.offered.append((event.customer_id, outcome.decision.item_id, event.epoch))
        items = self.personalizer.learners_by_name.get("cooccurrence")
        if items is not None:
            exclude_days = self.personalizer.guardrails.exclude_days
            popular = next((item for item in cast(ItemCooccurrence, items).popular(k=20)
                            if not state.purchased_recently(item, event.epoch, exclude_days)), None)
            if popular is not None:
                self.baseline.append((event.customer_id, popular, event.epoch))

    def report(self, end_ts: float) -> dict[str, Any]:
        cutoff = end_ts - self.horizon_s
        offered = [o for o in self.offered if o[2] <= cutoff]
        baseline = [b for b in self.baseline if b[2] <= cutoff]
        rate = hit_rate(offered, self.bought, self.horizon_s)
        baseline_rate = hit_rate(baseline, self.bought, self.horizon_s)
        return {"offers": len(offered), "hit_rate": rate, "popularity_hit_rate": baseline_rate,
                "lift_over_popularity": rate / baseline_rate if baseline_rate else None}


def hit_rate(offers: list[tuple[str, str, float]], bought: dict[tuple[str, str], list[float]],
             horizon_s: float) -> float:
    """Share of (customer, item, ts) offers whose item that customer bought within `horizon_s` after ts."""
    if not offers:
        return 0.0
    hits = 0
    for customer, item, ts in offers:
        times = bought.get((customer, item), [])
        i = bisect.bisect_right(times, ts)
        hits += i < len(times) and times[i] - ts <= horizon_s
    return hits / len(offers)
