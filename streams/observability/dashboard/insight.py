"""What the segments and models pages show, from what the worker has at hand:

- the learners in this worker's memory (each worker learns from its own partitions; with several workers, the
  page shows the one it is served by): the segments' centres in real values, the propensity and churn
  learners' calibration bins (their settled labels), the strongest item pairs of the co-occurrence learner;
- a sample of the profiles in Redis (every profile up to PROFILE_SAMPLE): segment sizes and score histograms,
  i.e. what a reader of the profiles sees;
- the workers' stats (all of them): the RFM groups' sizes.

Nothing here learns or changes a model; reading happens between the event loop's other work (the models are
only touched from that loop, so nothing changes under a read).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis

from models.calibration import LOGIT_RANGE, IsotonicBins
from models.learners.cooccurrence import ItemCooccurrence
from models.learners.delayed import SELF_MEASURED_EVERY, DelayedLabelLearner
from models.learners.segments import SegmentModel
from models.personalizer import Personalizer

PROFILE_SAMPLE = 5_000
SAMPLE_FIELDS = ("segment", "propensity", "churn_risk", "rfm_group")
HISTOGRAM_BINS = 20
TOP_PAIRS = 15
PAIR_SOURCE_ITEMS = 200  # pairs are looked for among this many of the most frequently seen-together items
SAMPLE_CACHE_S = 5.0


class ProfileSample:
    """Up to PROFILE_SAMPLE profiles' segment, scores and RFM group, re-read at most every SAMPLE_CACHE_S."""

    def __init__(self, client: aioredis.Redis, limit: int = PROFILE_SAMPLE) -> None:
        self.client = client
        self.limit = limit
        self._rows: list[dict[str, str]] = []
        self._read_at = 0.0
        self.complete = True

    async def rows(self) -> list[dict[str, str]]:
        if time.monotonic() - self._read_at < SAMPLE_CACHE_S:
            return self._rows
        names: list[Any] = []
        async for key in self.client.scan_iter(match="profile:*", count=1000):
            names.append(key)
            if len(names) >= self.limit:
                break
        rows = []
        for start in range(0, len(names), 500):
            async with self.client.pipeline(transaction=False) as pipe:
                for key in names[start:start + 500]:
                    pipe.hmget(key, SAMPLE_FIELDS)
                replies = await pipe.execute()
            for reply in replies:
                rows.append({f: _text(v) for f, v in zip(SAMPLE_FIELDS, reply, strict=True) if v not in (None, b"")})
        self._rows, self._read_at, self.complete = rows, time.monotonic(), len(names) < self.limit
        return rows


def segments_view(personalizer: Personalizer, rows: list[dict[str, str]], rfm_groups: Mapping[str, float],
                  complete: bool) -> dict[str, Any]:
    """Each segment's size (in the profile sample), label and centre in real values; the RFM groups."""
    sizes: dict[int, int] = {}
    for row in rows:
        if "segment" in row:
            sizes[int(row["segment"])] = sizes.get(int(row["segment"]), 0) + 1
    segments = []
    model = personalizer.learners_by_name.get("segments")
    if isinstance(model, SegmentModel) and model.n_learned:
        for segment in sorted(model.kmeans.centers):
            values = model.centre_values(segment)
            segments.append({"segment": segment, "label": model.describe(segment), "size": sizes.get(segment, 0),
                             "centre": real_values(values)})
    else:  # not learned in this worker yet: sizes from the profiles only
        segments = [{"segment": s, "label": None, "size": n, "centre": {}} for s, n in sorted(sizes.items())]
    return {"segments": segments, "profiles_sampled": len(rows), "sample_complete": complete,
            "rfm_groups": {name: int(count) for name, count in sorted(rfm_groups.items(), key=lambda kv: -kv[1])}}


def real_values(values: Mapping[str, float]) -> dict[str, float]:
    """A centre in the units a marketer reads: counts and money back from their log1p scale, category shares as
    they are, recency in days.

    >>> real_values({"frequency": math.log1p(3), "monetary": math.log1p(120), "aff_books": 0.6})
    {'orders': 3.0, 'spent': 120.0, 'share books': 0.6}
    """
    out: dict[str, float] = {}
    names = {"frequency": "orders", "monetary": "spent", "avg_order": "average order", "events": "events",
             "sessions": "sessions", "session_events": "events this session"}
    for feature, value in values.items():
        if feature in names:
            out[names[feature]] = round(max(0.0, math.expm1(value)), 2)
        elif feature.startswith("aff_"):
            out[f"share {feature[4:]}"] = round(value, 3)
        elif feature in ("recency_days", "events_per_session", "click_rate", "cart_rate", "search_share"):
            out[feature.replace("_", " ")] = round(value, 2)  # already in their own units
    return out


def learner_quality(learner: DelayedLabelLearner) -> dict[str, Any]:
    """A delayed-label learner's reliability table from its calibration bins: per bin of the score the
    calibrator maps (the linear classifier's without its intercept: the ranking), the mean of that score, the
    observed rate of the settled labels in it and their (decayed) count, and the calibrated score the bin maps
    to. The observed rates are what happened to the customers the learner scored (labels settle when the
    horizon passes in stream time), not a fit to themselves; the calibrated column is the map fitted on those
    same bins, so its closeness to the observed rate is by construction."""
    calibrator: IsotonicBins = learner.calibrator
    rows = []
    totals, positives, logit_sums = calibrator.totals, calibrator.positives, calibrator.logit_sums
    for b in range(calibrator.bins):
        total = totals[b]
        if total <= 1e-9:
            continue
        raw = 1.0 / (1.0 + math.exp(-logit_sums[b] / total))
        rows.append({"bin": b, "raw": round(raw, 4), "observed": round(positives[b] / total, 4),
                     "calibrated": round(calibrator.transform(raw), 4), "count": round(total, 1)})
    return {"labelled": learner.n_learned, "horizon_days": learner.horizon_s / 86_400.0,
            "self_measured_roc_auc": float(learner.auc.get()) if learner.n_learned > 2 * SELF_MEASURED_EVERY
            else None,
            "reliability": rows, "logit_range": LOGIT_RANGE}


def histogram(values: list[float], bins: int = HISTOGRAM_BINS) -> list[int]:
    """Counts of scores in [0, 1] per equal-width bin.

    >>> histogram([0.0, 0.04, 0.5, 1.0], bins=4)
    [2, 0, 1, 1]
    """
    counts = [0] * bins
    for value in values:
        counts[min(bins - 1, max(0, int(value * bins)))] += 1
    return counts


def top_pairs(model: ItemCooccurrence, limit: int = TOP_PAIRS) -> list[dict[str, Any]]:
    """The most similar item pairs (cosine of their co-occurrence), among the items most often seen together."""
    sources = sorted(model.occurrence, key=model.occurrence.__getitem__, reverse=True)[:PAIR_SOURCE_ITEMS]
    best: dict[tuple[str, str], float] = {}
    for item in sources:
        for other, similarity in model.neighbours(item, k=3):
            pair = (min(item, other), max(item, other))
            best[pair] = max(best.get(pair, 0.0), similarity)
    ranked = sorted(best.items(), key=lambda kv: -kv[1])[:limit]
    info = model.info
    return [{"a": a, "b": b, "similarity": round(s, 4),
             "a_category": info[a].category if a in info else None,
             "b_category": info[b].category if b in info else None} for (a, b), s in ranked]


def models_view(personalizer: Personalizer, rows: list[dict[str, str]]) -> dict[str, Any]:
    learners = personalizer.learners_by_name
    quality = {name: learner_quality(learner) for name, learner in learners.items()
               if isinstance(learner, DelayedLabelLearner)}
    histograms = {}
    for score in ("propensity", "churn_risk"):
        values = [float(row[score]) for row in rows if score in row]
        histograms[score] = {"counts": histogram(values), "n": len(values)}
    cooccurrence = learners.get("cooccurrence")
    pairs = top_pairs(cooccurrence) if isinstance(cooccurrence, ItemCooccurrence) else []
    return {"quality": quality, "histograms": histograms, "pairs": pairs, "profiles_sampled": len(rows),
            "versions": personalizer.model_versions()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
