"""Offers against what customers bought: the hit rate (the offered item bought by that customer within the
horizon) and, at the same moments, simple baselines: global popularity (the most popular item the customer may
be offered), personal "buy again" (the customer's most often bought item so far), "buy again" when bought at
least twice else the most popular, the customer's segment's favourite, and today's `nbo` when another policy
decides. Moments within one horizon of the log's end are not scored: their outcome is unknown.
"""

from __future__ import annotations

import bisect
from collections import Counter
from typing import Any

from models.learners.cooccurrence import ItemCooccurrence
from models.learners.segments import SegmentModel
from models.personalizer import Outcome, Personalizer
from models.policies.base import OfferRequest
from models.policies.nbo import NextBestOffer
from models.state import DAY, CustomerState
from schemas.events import ClickEvent, PurchaseEvent

BASELINES = ("popularity", "buy_again", "buy_again_twice_else_popular", "segment_favourite", "nbo")


class OfferHits:
    def __init__(self, personalizer: Personalizer, horizon_days: float = 7.0) -> None:
        self.personalizer = personalizer
        self.horizon_s = horizon_days * DAY
        self.offered: list[tuple[str, str, float]] = []  # customer, item, ts
        self.baselines: dict[str, list[tuple[str, str, float]]] = {name: [] for name in BASELINES}
        self.bought: dict[tuple[str, str], list[float]] = {}
        self.counts: dict[str, Counter[str]] = {}  # per customer: orders with each item, over the whole log
        self._nbo: NextBestOffer | None = None  # today's policy as a baseline, when another one decides

    def add(self, event: ClickEvent | PurchaseEvent, state: CustomerState, outcome: Outcome) -> None:
        if outcome.decision is not None:
            self._baselines(event, state, outcome)
            self.offered.append((event.customer_id, outcome.decision.item_id, event.epoch))
        if isinstance(event, PurchaseEvent):
            counts = self.counts.setdefault(event.customer_id, Counter())
            for line in event.lines:
                self.bought.setdefault((event.customer_id, line.item_id), []).append(event.epoch)
                counts[line.item_id] += 1

    def _baselines(self, event: ClickEvent | PurchaseEvent, state: CustomerState, outcome: Outcome) -> None:
        learners = self.personalizer.learners_by_name
        items = learners.get("cooccurrence")
        if not isinstance(items, ItemCooccurrence):
            return
        customer, ts = event.customer_id, event.epoch
        excluded = self.personalizer.guardrails.excluded(state, ts)
        popular = next((item for item in items.popular(k=20) if item not in excluded), None)
        # The customer's own history as of this moment (this event's order included, as the state has it).
        counts = Counter(self.counts.get(customer, Counter()))
        if isinstance(event, PurchaseEvent):
            counts.update(line.item_id for line in event.lines)
        mine = [(n, item) for item, n in counts.items() if item not in excluded]
        again = max(mine)[1] if mine else None
        twice = again if mine and max(mine)[0] >= 2 else popular
        segments = learners.get("segments")
        favourite = None
        if isinstance(segments, SegmentModel) and outcome.segment is not None:
            favourite = next((item for item in segments.favourites.predict_one(outcome.segment)
                              if item not in excluded), None)
        if self.personalizer.policy.name != NextBestOffer.name:
            if self._nbo is None:  # built once, on the learners this run's personalizer keeps
                self._nbo = NextBestOffer.from_settings(self.personalizer.settings, learners)
            decided = self._nbo.decide(OfferRequest(state, ts, outcome.outputs or {}, excluded))
            nbo = decided.item_id if decided is not None else None
        else:
            nbo = outcome.decision.item_id if outcome.decision is not None else None
        for name, item in (("popularity", popular), ("buy_again", again), ("buy_again_twice_else_popular", twice),
                           ("segment_favourite", favourite), ("nbo", nbo)):
            # A rule with nothing to offer at this moment misses it (every baseline is scored at every moment).
            self.baselines[name].append((customer, item or "", ts))

    def report(self, end_ts: float) -> dict[str, Any]:
        cutoff = end_ts - self.horizon_s
        offered = [o for o in self.offered if o[2] <= cutoff]
        rate = hit_rate(offered, self.bought, self.horizon_s)
        out: dict[str, Any] = {"offers": len(offered), "policy": self.personalizer.policy.name, "hit_rate": rate}
        for name, moments in self.baselines.items():
            out[f"{name}_hit_rate"] = hit_rate([b for b in moments if b[2] <= cutoff], self.bought, self.horizon_s)
        best = max(out["popularity_hit_rate"], out["buy_again_hit_rate"])
        out["lift_over_popularity"] = rate / out["popularity_hit_rate"] if out["popularity_hit_rate"] else None
        out["lift_over_best_of_popularity_and_buy_again"] = rate / best if best else None
        out["lift_over_nbo"] = rate / out["nbo_hit_rate"] if out["nbo_hit_rate"] else None
        return out


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
