"""Item co-occurrence: which items are bought or viewed together, with time decay and bounded memory.

Also the engine's item memory: each item's category and last known price, and its popularity overall and
within its category (the candidate sources of the offer policies read them).

Weights use forward decay: an observation at time t adds 2^((t - t0) / half_life) instead of 1, so older
evidence is worth relatively less without touching every counter on each update. Similarity is cosine,
w_ij / sqrt(n_i * n_j) with n_i the decayed count of contexts that held item i, which does not simply
favour popular items.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter

from models.learners.base import EventContext, Learner, register_learner
from models.settings import ModelSettings
from models.state import DAY, INTERACTION_WEIGHT
from schemas.events import PurchaseEvent

# Rescale all weights before they approach float overflow.
_RESCALE_AT = 1e120


@dataclass(frozen=True)
class ItemInfo:
    item_id: str
    category: str
    price: float


# Neighbour lists are reused until this many baskets (or co-viewed sets) have been learned since, or this share
# of all learned so far once that is more.
NEIGHBOURS_STALE_AFTER = 200
NEIGHBOURS_STALE_SHARE = 0.05
NEIGHBOURS_CACHED = 10
NEIGHBOUR_CACHE_ITEMS = 20_000
# Popular-in-category lists are re-sorted after this many item observations (two per decision otherwise).
POPULAR_STALE_AFTER = 100
POPULAR_CACHED = 10
# Views within a session say "viewed together" more weakly than a shared basket does.
CO_VIEW_WEIGHT = 0.1
CO_VIEW_CONTEXT = 4


@register_learner
class ItemCooccurrence(Learner):
    name = "cooccurrence"
    version = "cosine-1"

    @classmethod
    def from_settings(cls, settings: ModelSettings) -> ItemCooccurrence:
        return cls(half_life_days=settings.cooc_half_life_days, max_neighbours=settings.cooc_max_neighbours,
                   max_items=settings.cooc_max_items)

    def __init__(self, half_life_days: float = 30.0, max_neighbours: int = 30, max_items: int = 50_000,
                 max_per_category: int = 50, max_basket: int = 20) -> None:
        self.half_life_s = half_life_days * DAY
        self.max_neighbours = max_neighbours
        self.max_items = max_items
        self.max_per_category = max_per_category
        self.max_basket = max_basket
        self.t0: float | None = None
        # Popularity (interaction-weighted) and, separately, how often an item appeared in any learned
        # context: cosine needs the latter, in the same unit as the pair weights.
        self.item_weight: dict[str, float] = {}
        self.occurrence: dict[str, float] = {}
        self.pair_weight: dict[str, dict[str, float]] = {}
        self.info: dict[str, ItemInfo] = {}
        self.category_top: dict[str, dict[str, float]] = {}
        self.n_learned = 0
        self.n_baskets = 0
        self._reset_caches()

    def drop_caches(self) -> None:
        self._reset_caches()

    def _reset_caches(self) -> None:
        self._popular: list[str] = []
        self._popular_at = -1
        self._category_popular: dict[str, tuple[int, list[str]]] = {}
        self._neighbour_cache: dict[str, tuple[float, list[tuple[str, float]]]] = {}  # item -> (stale at, list)

    # Caches are derived data: keep them out of checkpoints, and start them empty after a restore.
    _CACHES = ("_popular", "_popular_at", "_category_popular", "_neighbour_cache")

    def __getstate__(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k not in self._CACHES}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._reset_caches()

    # --- learning ----------------------------------------------------------------------------
    def learn_one(self, ctx: EventContext) -> None:
        """Items of a basket go together, as (more weakly) do the customer's last few viewed items."""
        event, ts = ctx.event, ctx.ts
        if isinstance(event, PurchaseEvent):
            for line in event.lines:
                self.observe_item(ItemInfo(line.item_id, line.category, line.unit_price), ts,
                                  weight=INTERACTION_WEIGHT["purchase"] * line.quantity)
            self.learn_together([line.item_id for line in event.lines], ts, weight=1.0)
            return
        if event.item_id is None or event.category is None:
            return
        known = self.info.get(event.item_id)
        price = event.price if event.price is not None else (known.price if known else 0.0)
        self.observe_item(ItemInfo(event.item_id, event.category, price), ts, weight=INTERACTION_WEIGHT[event.type])
        self.learn_together(ctx.state.recent_items[-CO_VIEW_CONTEXT:], ts, weight=CO_VIEW_WEIGHT)

    def metrics(self) -> dict[str, float]:
        return {"items_known": float(len(self.info))}

    def _boost(self, ts: float) -> float:
        if self.t0 is None:
            self.t0 = ts
        boost = 2.0 ** ((ts - self.t0) / self.half_life_s)
        if boost > _RESCALE_AT:
            self._rescale(boost)
            boost = 1.0
        return boost

    def _rescale(self, factor: float) -> None:
        assert self.t0 is not None
        self.t0 += self.half_life_s * math.log2(factor)
        for weights in (self.item_weight, self.occurrence):
            for item in weights:
                weights[item] /= factor
        for neighbours in self.pair_weight.values():
            for other in neighbours:
                neighbours[other] /= factor
        for top in self.category_top.values():
            for item in top:
                top[item] /= factor

    def observe_item(self, item: ItemInfo, ts: float, weight: float = 1.0) -> None:
        """Count one interaction with an item (popularity) and remember its category and price."""
        added = weight * self._boost(ts)
        self.info[item.item_id] = item
        self.item_weight[item.item_id] = self.item_weight.get(item.item_id, 0.0) + added
        top = self.category_top.setdefault(item.category, {})
        top[item.item_id] = top.get(item.item_id, 0.0) + added
        if len(top) > 2 * self.max_per_category:
            self._keep_strongest(top, self.max_per_category)
        if len(self.item_weight) > self.max_items * 1.1:
            self._forget_weakest_items()
        self.n_learned += 1

    def learn_together(self, items: Sequence[str], ts: float, weight: float = 1.0) -> None:
        """Learn that these items occurred together (a basket, or a session's recent views)."""
        unique = list(dict.fromkeys(items))[: self.max_basket]
        if len(unique) < 2:
            return
        added = weight * self._boost(ts)
        self.n_baskets += 1
        for a in unique:
            self.occurrence[a] = self.occurrence.get(a, 0.0) + added
            for b in unique:
                if a != b:
                    self._add_pair(a, b, added)

    def _add_pair(self, a: str, b: str, added: float) -> None:
        neighbours = self.pair_weight.setdefault(a, {})
        neighbours[b] = neighbours.get(b, 0.0) + added
        if len(neighbours) > 2 * self.max_neighbours:
            self._keep_strongest(neighbours, self.max_neighbours)

    @staticmethod
    def _keep_strongest(weights: dict[str, float], keep: int) -> None:
        # Amortised pruning: let the dict grow to 2x, then cut back to the strongest `keep`.
        strongest = sorted(weights, key=weights.__getitem__, reverse=True)[:keep]
        kept = {k: weights[k] for k in strongest}
        weights.clear()
        weights.update(kept)

    def _forget_weakest_items(self) -> None:
        keep = set(sorted(self.item_weight, key=self.item_weight.__getitem__, reverse=True)[: self.max_items])
        for item in [i for i in self.item_weight if i not in keep]:
            del self.item_weight[item]
            self.occurrence.pop(item, None)
            self.pair_weight.pop(item, None)
            info = self.info.pop(item, None)
            if info is not None:
                self.category_top.get(info.category, {}).pop(item, None)

    # --- predicting --------------------------------------------------------------------------
    def neighbours(self, item_id: str, k: int = 10) -> list[tuple[str, float]]:
        """The k items most associated with item_id, by cosine similarity.

        Every decision asks for the neighbours of the customer's five recent items (most of a worker's CPU
        before this cache): a list is reused until NEIGHBOURS_STALE_AFTER more baskets have been learned, or
        NEIGHBOURS_STALE_SHARE more of all so far once that is more (views learn co-occurrences too: with an
        absolute count alone, a busy worker ranked about one list again per event). A list shorter than k is
        ranked each time: an item with few neighbours yet gains them fastest (caching those too cost 0.2-0.4
        points of the learned policy's hit rate on three synthetic seeds).
        """
        cache = self._neighbour_cache
        hit = cache.get(item_id)
        if hit is not None and self.n_baskets < hit[0] and len(hit[1]) >= k:
            return hit[1][:k]
        scored = self._rank_neighbours(item_id, max(k, NEIGHBOURS_CACHED))
        if len(cache) >= NEIGHBOUR_CACHE_ITEMS:
            cache.clear()
        baskets = self.n_baskets
        cache[item_id] = (baskets + max(NEIGHBOURS_STALE_AFTER, NEIGHBOURS_STALE_SHARE * baskets), scored)  # stale at
        return scored[:k]

    def _rank_neighbours(self, item_id: str, k: int) -> list[tuple[str, float]]:
        candidates = self.pair_weight.get(item_id)
        if not candidates:
            return []
        # Inlined cosine (the hot path of every decision): w_ab / sqrt(n_a * n_b), capped at 1. Views keep the
        # lists stale (they learn co-occurrences too): about one list is ranked again per event.
        occurrence_of = self.occurrence.get
        n_a = occurrence_of(item_id, 0.0)
        sqrt = math.sqrt
        scored = []
        for other, w_ab in candidates.items():
            cosine = w_ab / sqrt((n_a or w_ab) * occurrence_of(other, w_ab))
            scored.append((other, cosine if cosine < 1.0 else 1.0))
        scored.sort(key=itemgetter(1), reverse=True)
        return scored[:k]

    def popular(self, category: str | None = None, k: int = 10) -> list[str]:
        if category is not None:
            # Two categories are asked for on every decision: re-sort every POPULAR_STALE_AFTER observations.
            hit = self._category_popular.get(category)
            if hit is None or self.n_learned - hit[0] >= POPULAR_STALE_AFTER or k > POPULAR_CACHED:
                weights = self.category_top.get(category, {})
                hit = (self.n_learned, sorted(weights, key=weights.__getitem__, reverse=True)[:max(k, POPULAR_CACHED)])
                self._category_popular[category] = hit
            return hit[1][:k]
        # Sorting every item is costly: refresh the global list every few hundred observations.
        if not self._popular or self.n_learned - self._popular_at >= 500:
            self._popular = sorted(self.item_weight, key=self.item_weight.__getitem__, reverse=True)[:100]
            self._popular_at = self.n_learned
        return self._popular[:k]

