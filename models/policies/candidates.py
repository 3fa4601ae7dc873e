"""Where offer candidates come from, and the words that explain each source.

Each source calls `sink(item_id, relevance, source, subject)` for every candidate it proposes rather than
building a list: a policy scores candidates as they come (collecting ~60 candidate objects and their reasons
per decision was a large share of its time). The reason text is written only for the winner.

>>> reason(TOGETHER, "ele-phone"), reason(AGAIN, 3)
('often bought or viewed together with ele-phone', 'you bought it before (3 times)')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from models.learners.base import Learner
from models.learners.cooccurrence import ItemCooccurrence
from models.learners.segments import SegmentFavourites, SegmentModel
from models.state import CustomerState

Sink = Callable[[str, float, int, object], None]

TOGETHER, AGAIN, CATEGORY, SEGMENT, POPULAR = range(5)
# Neighbours asked of the customer's five most recent items, the latest first: older items say less.
NEIGHBOURS_BY_AGE = (10, 6, 4, 3, 2)
RECENT_DECAY = 0.8


def reason(source: int, subject: object) -> str:
    if source == TOGETHER:
        return f"often bought or viewed together with {subject}"
    if source == AGAIN:
        return "you bought it before" + (f" ({subject} times)" if isinstance(subject, int) and subject > 1 else "")
    if source == CATEGORY:
        return f"popular in {subject}, one of your top categories"
    if source == SEGMENT:
        return f"popular with customers like you ({subject or 'your segment'})"
    return "popular right now"


def bought_together(state: CustomerState, items: ItemCooccurrence, sink: Sink) -> None:
    """Neighbours of the customer's recent items by co-occurrence, the most recent counted most."""
    for age, recent in enumerate(reversed(state.recent_items[-len(NEIGHBOURS_BY_AGE):])):
        decay = RECENT_DECAY**age
        for other, similarity in items.neighbours(recent, k=NEIGHBOURS_BY_AGE[age]):
            sink(other, similarity * decay + 0.3, TOGETHER, recent)


def buy_again(state: CustomerState, sink: Sink) -> None:
    """What the customer bought before, more so if repeatedly (the guardrails drop what is too recent)."""
    bought: dict[str, int] = {}
    for item_id, _ in state.recent_purchases:
        bought[item_id] = bought.get(item_id, 0) + 1
    for item_id, times in bought.items():
        sink(item_id, 0.25 + 0.15 * (times - 1), AGAIN, times)


def category_favourites(state: CustomerState, items: ItemCooccurrence, share: dict[str, float], sink: Sink) -> None:
    """Popular items in the customer's two top categories, weighted by the customer's interest in each."""
    for category in state.top_categories(2):
        for item_id in items.popular(category, k=5):
            sink(item_id, 0.3 * share.get(category, 0.0), CATEGORY, category)


def segment_favourites(favourites: Iterable[str], label: str, sink: Sink) -> None:
    """What customers of the same segment buy."""
    for item_id in favourites:
        sink(item_id, 0.2, SEGMENT, label)


def popular(items: ItemCooccurrence, sink: Sink, k: int = 5) -> None:
    """The globally popular items: the cold-start fallback."""
    for item_id in items.popular(None, k=k):
        sink(item_id, 0.05, POPULAR, None)


def propose(state: CustomerState, items: ItemCooccurrence, favourites: SegmentFavourites | None,
            outputs: Mapping[str, Any], share: dict[str, float], sink: Sink,
            again: Callable[[CustomerState, Sink], None] = buy_again, popular_k: int = 5) -> None:
    """Every source in turn, the latest first: together, `again` (what the customer bought before), category
    favourites, the segment's favourites, popular. The policies differ in how they score, not in what they ask."""
    bought_together(state, items, sink)
    again(state, sink)
    category_favourites(state, items, share, sink)
    if favourites is not None:
        segment_favourites(favourites.predict_one(outputs.get("segment")), outputs.get("segment_label") or "", sink)
    popular(items, sink, k=popular_k)


def favourites_of(learners: Mapping[str, Learner]) -> SegmentFavourites | None:
    """The segments learner's favourites, when one is configured (a source policies use if they can)."""
    segments = learners.get("segments")
    return segments.favourites if isinstance(segments, SegmentModel) else None
