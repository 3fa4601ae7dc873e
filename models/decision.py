"""Next-best-offer: pick one item per customer from co-occurrence, category favourites and popularity."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from models.cooccurrence import ItemCooccurrence
from models.features import CustomerState


@dataclass(frozen=True)
class Decision:
    item_id: str
    category: str | None
    score: float
    reason: str


# Candidate sources. A reason's text is written only for the winner: formatting ~60 reasons and objects
# per decision took a third of its time.
_TOGETHER, _AGAIN, _CATEGORY, _SEGMENT, _POPULAR = range(5)
_NEIGHBOURS_BY_AGE = (10, 6, 4, 3, 2)


def _reason(source: int, subject: object) -> str:
    if source == _TOGETHER:
        return f"often bought or viewed together with {subject}"
    if source == _AGAIN:
        return "you bought it before" + (f" ({subject} times)" if isinstance(subject, int) and subject > 1 else "")
    if source == _CATEGORY:
        return f"popular in {subject}, one of your top categories"
    if source == _SEGMENT:
        return f"popular with customers like you ({subject or 'your segment'})"
    return "popular right now"


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
        # Scored as they come rather than collected first: an item offered by two sources keeps its best
        # score either way (the score grows with relevance), and the hot loop does half the work.
        excluded = state.bought_within(now_ts, self.exclude_days)
        excluded.update(state.recent_items[-1:])
        share = state.affinity_share()
        affinity = share.get
        info_of = items.info.get
        best: list[Any] = [None, 0.0, None, 0, None]  # item, score, category, source, subject

        def offer(item_id: str, relevance: float, source: int, subject: object) -> None:
            if item_id in excluded:
                return
            info = info_of(item_id)
            if info is None:
                score, category = 0.0, None
            else:
                category = info.category
                score = propensity * math.log1p(info.price) * (relevance + 0.5 * affinity(category, 0.0))
            if best[0] is None or score > best[1]:
                best[:] = item_id, score, category, source, subject

        for age, recent in enumerate(reversed(state.recent_items[-5:])):
            decay = 0.8**age
            for other, similarity in items.neighbours(recent, k=_NEIGHBOURS_BY_AGE[age]):
                offer(other, similarity * decay + 0.3, _TOGETHER, recent)
        bought: dict[str, int] = {}
        for item_id, _ in state.recent_purchases:
            bought[item_id] = bought.get(item_id, 0) + 1
        for item_id, times in bought.items():
            offer(item_id, 0.25 + 0.15 * (times - 1), _AGAIN, times)
        for category in state.top_categories(2):
            for item_id in items.popular(category, k=5):
                offer(item_id, 0.3 * share.get(category, 0.0), _CATEGORY, category)
        for item_id in favourites:
            offer(item_id, 0.2, _SEGMENT, segment_label)
        for item_id in items.popular(None, k=5):
            offer(item_id, 0.05, _POPULAR, None)

        item_id, score, category, source, subject = best
        if item_id is None:
            return None
        return Decision(item_id, category, score, _reason(source, subject))


__all__ = ["Decision", "NextBestOffer"]
