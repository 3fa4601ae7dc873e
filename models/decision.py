"""Next-best-offer: pick one item per customer from co-occurrence, category favourites and popularity."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from models.cooccurrence import ItemCooccurrence
from models.features import CustomerState


@dataclass(frozen=True)
class Decision:
    item_id: str
    category: str | None
    score: float
    reason: str


@dataclass
class _Candidate:
    item_id: str
    relevance: float
    reason: str


class NextBestOffer:
    """Score = propensity x value x relevance, over candidates from three sources.

    - together: neighbours of the customer's recent items (co-occurrence), most recent counted most;
    - buy again: what the customer bought before (outside the exclusion window), more so if repeatedly;
    - favourites: popular items in the customer's top categories, and what their segment buys;
    - popular: globally popular items, the cold-start fallback.
    Items bought within `exclude_days` are never offered; at most `cap_per_hour` offers per customer per
    hour of event time; the same item is not re-sent until `refresh_s` has passed.
    """

    version = "nbo-2"

    def __init__(self, cap_per_hour: int = 4, refresh_s: float = 600.0, exclude_days: float = 30.0) -> None:
        self.cap_per_hour = cap_per_hour
        self.refresh_s = refresh_s
        self.exclude_days = exclude_days

    def capped(self, state: CustomerState, now_ts: float) -> bool:
        recent = [t for t in state.offer_times if now_ts - t < 3600.0]
        state.offer_times = recent
        return len(recent) >= self.cap_per_hour

    def decide(self, state: CustomerState, now_ts: float, propensity: float, items: ItemCooccurrence,
               favourites: Sequence[str] = (), segment_label: str = "") -> Decision | None:
        if self.capped(state, now_ts):
            return None
        best = self._best(state, now_ts, propensity, items, favourites, segment_label)
        if best is None:
            return None
        last = state.last_offer
        if last and last.get("item_id") == best.item_id and now_ts - float(last.get("ts", 0)) < self.refresh_s:
            return None  # nothing relevant changed
        return best

    def _best(self, state: CustomerState, now_ts: float, propensity: float, items: ItemCooccurrence,
              favourites: Sequence[str], segment_label: str) -> Decision | None:
        candidates: dict[str, _Candidate] = {}

        def offer(item_id: str, relevance: float, reason: str) -> None:
            current = candidates.get(item_id)
            if current is None or relevance > current.relevance:
                candidates[item_id] = _Candidate(item_id, relevance, reason)

        for age, recent in enumerate(reversed(state.recent_items[-5:])):
            for other, similarity in items.neighbours(recent, k=10):
                offer(other, similarity * 0.8**age + 0.3, f"often bought or viewed together with {recent}")
        bought: dict[str, int] = {}
        for item_id, _ in state.recent_purchases:
            bought[item_id] = bought.get(item_id, 0) + 1
        for item_id, times in bought.items():
            reason = "you bought it before" + (f" ({times} times)" if times > 1 else "")
            offer(item_id, 0.25 + 0.15 * (times - 1), reason)
        share = state.affinity_share()
        for category in state.top_categories(2):
            for item_id in items.popular(category, k=5):
                offer(item_id, 0.3 * share.get(category, 0.0),
                      f"popular in {category}, one of your top categories")
        for item_id in favourites:
            offer(item_id, 0.2, f"popular with customers like you ({segment_label or 'your segment'})")
        for item_id in items.popular(None, k=5):
            offer(item_id, 0.05, "popular right now")

        excluded = state.bought_within(now_ts, self.exclude_days)
        excluded.update(state.recent_items[-1:])
        best: Decision | None = None
        for candidate in candidates.values():
            if candidate.item_id in excluded:
                continue
            info = items.info.get(candidate.item_id)
            price = info.price if info else 0.0
            item_category = info.category if info else None
            affinity = share.get(item_category, 0.0) if item_category else 0.0
            score = propensity * math.log1p(price) * (candidate.relevance + 0.5 * affinity)
            if best is None or score > best.score:
                best = Decision(candidate.item_id, item_category, score, candidate.reason)
        return best


__all__ = ["Decision", "NextBestOffer"]
