"""Customer segments: online k-means over scaled RFM and behaviour features."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from river import cluster, preprocessing

from models.learners.base import EventContext, Learner, register_learner
from models.learners.scaling import learn_standardised
from models.settings import ModelSettings
from models.state import CustomerState
from schemas.events import PurchaseEvent

LABEL_STALE_AFTER = 100
# A category named in a label holds at least this share of the segment's interest.
CATEGORY_SHARE = 0.3


@register_learner
class SegmentModel(Learner):
    """Incremental clustering: StandardScaler then river.cluster.KMeans, one customer snapshot at a time.

    Outputs `segment` and `segment_label` for the customer of each event, and keeps what each segment buys
    (`favourites`): a basket counts for the segment the customer was in when buying, before the same event
    may re-assign them.
    """

    name = "segments"
    version = "kmeans-1"

    @classmethod
    def from_settings(cls, settings: ModelSettings) -> SegmentModel:
        return cls(n_segments=settings.n_segments, resegment_every_s=settings.resegment_every_s)

    def __init__(self, n_segments: int = 4, halflife: float = 0.02, affinity_weight: float = 1.5,
                 seed: int = 42, resegment_every_s: float = 0.0) -> None:
        self.n_segments = n_segments
        self.resegment_every_s = resegment_every_s
        # Category taste separates customers better than counts that grow with tenure: after scaling,
        # affinity features count this much more in the distance (1.5 measured best: docs/model-quality.md).
        self.affinity_weight = affinity_weight
        self.scaler = preprocessing.StandardScaler()
        self.kmeans = cluster.KMeans(n_clusters=n_segments, halflife=halflife, sigma=0.5, seed=seed)
        self.n_learned = 0
        self._labels: dict[int, tuple[int, str]] = {}
        self._initialised: set[str] = set()
        self._weights: dict[str, float] = {}  # each feature's weight in the distance (1, or the affinity weight)
        self.favourites = SegmentFavourites()

    def learn_one(self, ctx: EventContext) -> None:
        state = ctx.state
        if isinstance(ctx.event, PurchaseEvent) and state.segment is not None:
            self.favourites.learn_basket(state.segment, [line.item_id for line in ctx.event.lines])
        if (state.segment is None or ctx.is_purchase or state.session_events == 1
                or ctx.ts - state.segment_ts >= self.resegment_every_s):
            state.segment = self.learn_predict_one(ctx.x)
            state.segment_ts = ctx.ts
        ctx.outputs["segment"] = state.segment
        ctx.outputs["segment_label"] = self.describe(state.segment)

    def _distance_weights(self, x: dict[str, float]) -> dict[str, float]:
        """Each feature's weight in the distance, for every feature of x: the affinity weight for a category's
        share, 1 otherwise (x 1.0 leaves a value as it is). Derived, so kept out of checkpoints."""
        weights = self._weights
        if not weights.keys() >= x.keys():
            for name in x.keys() - weights.keys():
                weights[name] = self.affinity_weight if name.startswith("aff_") else 1.0
        return weights

    def _scaled(self, x: dict[str, float]) -> dict[str, float]:
        z = self.scaler.transform_one(x)
        if not self._initialised.issuperset(z):
            self._initialise(z)
        weights = self._distance_weights(x)
        return {k: v * weights[k] for k, v in z.items()}

    def _learn_scaled(self, x: dict[str, float]) -> dict[str, float]:
        """`scaler.learn_one(x)` then `_scaled(x)` in one pass (models/learners/scaling.py): River's arithmetic,
        half of a segment's cost before."""
        z = learn_standardised(self.scaler, x, self._distance_weights(x))
        if not self._initialised.issuperset(z):
            self._initialise(z)
        return z

    def _initialise(self, z: dict[str, float]) -> None:
        # River's KMeans draws a centre's coordinate for a new feature when it first meets it, in the order
        # of a set of feature names: that order, and so the clustering, changed with PYTHONHASHSEED (ARI
        # 0.47 or 0.85 on the same log). Draw them here in sorted order instead.
        for feature in sorted(z.keys() - self._initialised):
            for centre in self.kmeans.centers.values():
                centre[feature]  # a defaultdict: the lookup draws the coordinate
            self._initialised.add(feature)

    def learn_features(self, x: dict[str, float]) -> None:
        self.learn_predict_one(x)

    def learn_predict_one(self, x: dict[str, float]) -> int:
        """Learn from x and return its segment: one scaling and one distance pass instead of two of each."""
        self.n_learned += 1
        if not self._euclidean_kmeans():
            self.scaler.learn_one(x)
            return int(self.kmeans.learn_predict_one(self._scaled(x)))
        z = self._learn_scaled(x)
        # River's KMeans.learn_predict_one, with the nearest centre found by `_nearest`.
        closest = self._nearest(z)
        centre, halflife = self.kmeans.centers[closest], self.kmeans.halflife
        for feature, value in z.items():
            centre[feature] += halflife * (value - centre[feature])
        return closest

    def predict_one(self, x: dict[str, float]) -> int:
        z = self._scaled(x)
        return self._nearest(z) if self._euclidean_kmeans() else int(self.kmeans.predict_one(z))

    def _euclidean_kmeans(self) -> bool:
        # bench/clustering_choice.py swaps in other River clusterers: they keep their own methods.
        return type(self.kmeans) is cluster.KMeans and self.kmeans.p == 2

    def _nearest(self, z: dict[str, float]) -> int:
        """The centre nearest to z, as River's KMeans.predict_one finds it (the first of equals), about 4x faster:
        River sums |c - x| ** p over a set built per centre; here every feature of z is already a coordinate of
        every centre (`_initialise`), so the squared differences are summed over the centre's own items. The
        sums differ from River's in the last bits only (another order of addition)."""
        get = z.get
        best, best_distance = 0, math.inf
        for segment, centre in self.kmeans.centers.items():
            distance = 0.0
            for feature, coordinate in centre.items():
                difference = coordinate - get(feature, 0.0)
                distance += difference * difference
            if distance < best_distance:
                best, best_distance = segment, distance
        return int(best)

    def describe(self, segment: int) -> str:
        """The segment in absolute terms, from its centre's real values (unscaled): "~3 orders, ~120 spent,
        ~40 events, mostly electronics (62%)". Numbers only, never an adjective that the values could contradict.

        Asked on every event; centres move slowly, so a label is re-derived every LABEL_STALE_AFTER learns.
        """
        cached = self._labels.get(segment)
        if cached is None or self.n_learned - cached[0] >= LABEL_STALE_AFTER:
            cached = self._labels[segment] = (self.n_learned, label_from(self.centre_values(segment)))
        return cached[1]

    def centre_values(self, segment: int) -> dict[str, float]:
        """The segment's centre in the features' own units: the scaling undone (affinity weight included)."""
        centre = self.kmeans.centers[segment]
        means, variances = self.scaler.means, self.scaler.vars
        values = {}
        for feature, z in centre.items():
            if feature.startswith("aff_"):
                z /= self.affinity_weight
            values[feature] = z * variances.get(feature, 0.0) ** 0.5 + means.get(feature, 0.0)
        return values

    def predict(self, state: CustomerState, now_ts: float) -> dict[str, Any]:
        if state.segment is None:
            return {}
        return {"segment": state.segment, "segment_label": self.describe(state.segment)}

    def metrics(self) -> dict[str, float]:
        return {"segments": float(self.n_segments)}

    def drop_caches(self) -> None:
        self.favourites.drop_caches()

    def __getstate__(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "_weights"}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._weights = {}  # derived from the affinity weight: rebuilt as features are met


def label_from(values: dict[str, float]) -> str:
    """Words for a centre's real values (models/features.py: counts and money are on log1p scales).

    >>> label_from({"frequency": 1.386, "monetary": 4.796, "events": 3.714, "aff_books": 0.62, "aff_home": 0.2})
    '~3 orders, ~120 spent, ~40 events, mostly books (62%)'
    >>> label_from({"frequency": 0.0, "monetary": 0.0, "events": 1.1, "aff_books": 0.25, "aff_home": 0.25})
    'no orders, ~2 events, no main category'
    >>> label_from({"frequency": 0.7, "monetary": 3.0, "events": 2.0, "aff_books": 0.9})
    '~1 order, ~19 spent, ~6 events, mostly books (90%)'
    """
    orders = max(0.0, math.expm1(values.get("frequency", 0.0)))
    words = ["no orders" if orders < 0.5 else "~1 order" if orders < 1.5 else f"~{_rounded(orders)} orders"]
    if orders >= 0.5:
        words.append(f"~{_rounded(max(0.0, math.expm1(values.get('monetary', 0.0))))} spent")
    words.append(f"~{_rounded(max(0.0, math.expm1(values.get('events', 0.0))))} events")
    shares = {k[4:]: v for k, v in values.items() if k.startswith("aff_")}
    top = max(shares, key=shares.__getitem__) if shares else None
    if top is not None and shares[top] >= CATEGORY_SHARE:
        words.append(f"mostly {top} ({shares[top]:.0%})")
    else:
        words.append("no main category")
    return ", ".join(words)


def _rounded(value: float) -> str:
    """Two significant figures: ~3, ~40, ~120, ~1,200."""
    if value < 10:
        return f"{value:.0f}"
    digits = 10 ** (int(math.log10(value)) - 1)
    return f"{round(value / digits) * digits:,.0f}"


class SegmentFavourites:
    """What customers of each segment buy: purchase counts per (segment, item), bounded to the strongest
    `max_per_segment` items per segment. Candidates for "popular with customers like you".

    >>> favourites = SegmentFavourites()
    >>> favourites.learn_basket(0, ["tea", "cups"])
    >>> favourites.learn_basket(0, ["tea"])
    >>> favourites.predict_one(0)
    ['tea', 'cups']
    """

    def __init__(self, max_per_segment: int = 50) -> None:
        self.max_per_segment = max_per_segment
        self.counts: dict[int, dict[str, float]] = {}
        self.n_learned = 0
        self._ranked: dict[int, list[str]] = {}  # asked on every event, changed only by purchases

    def __getstate__(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "_ranked"}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._ranked = {}

    def drop_caches(self) -> None:
        self._ranked = {}

    def learn_basket(self, segment: int, items: Iterable[str], weight: float = 1.0) -> None:
        self._ranked.pop(segment, None)
        counts = self.counts.setdefault(segment, {})
        for item in items:
            counts[item] = counts.get(item, 0.0) + weight
        self.n_learned += 1
        if len(counts) > 2 * self.max_per_segment:
            # Amortised pruning, as in ItemCooccurrence.
            kept = sorted(counts, key=counts.__getitem__, reverse=True)[: self.max_per_segment]
            self.counts[segment] = {item: counts[item] for item in kept}

    def predict_one(self, segment: int | None, k: int = 5) -> list[str]:
        if segment is None:
            return []
        ranked = self._ranked.get(segment)
        if ranked is None:
            counts = self.counts.get(segment, {})
            ranked = self._ranked[segment] = sorted(counts, key=counts.__getitem__, reverse=True)
        return ranked[:k]
