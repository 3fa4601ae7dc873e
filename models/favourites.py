"""What customers of each segment buy: candidates for "popular with customers like you"."""

from __future__ import annotations

from collections.abc import Iterable


class SegmentFavourites:
    """Purchase counts per (segment, item), bounded to the strongest `max_per_segment` items per segment."""

    def __init__(self, max_per_segment: int = 50) -> None:
        self.max_per_segment = max_per_segment
        self.counts: dict[int, dict[str, float]] = {}
        self._ranked: dict[int, list[str]] = {}  # asked on every event, changed only by purchases

    def __getstate__(self) -> dict[str, object]:
        return {"max_per_segment": self.max_per_segment, "counts": self.counts}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._ranked = {}

    def learn_one(self, segment: int, items: Iterable[str], weight: float = 1.0) -> None:
        self._ranked.pop(segment, None)
        counts = self.counts.setdefault(segment, {})
        for item in items:
            counts[item] = counts.get(item, 0.0) + weight
        if len(counts) > 2 * self.max_per_segment:
            # Amortised pruning, as in ItemCooccurrence.
            kept = sorted(counts, key=counts.__getitem__, reverse=True)[: self.max_per_segment]
            self.counts[segment] = {item: counts[item] for item in kept}

    def predict_one(self, segment: int, k: int = 5) -> list[str]:
        ranked = self._ranked.get(segment)
        if ranked is None:
            counts = self.counts.get(segment, {})
            ranked = self._ranked[segment] = sorted(counts, key=counts.__getitem__, reverse=True)
        return ranked[:k]
