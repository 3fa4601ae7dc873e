"""Online calibration of a classifier's scores: what fraction of customers scored p really do it.

Labels are counted in bins of the raw score's logit (equal width, so the tails keep resolution), with a slow
decay so the map follows drift (faster at first, while the classifier's scores still change meaning); every
`refit_every` labels the bins' observed rates are made monotonic with pool-adjacent-violators (isotonic
regression) and the raw score is mapped by interpolating between bins.
Until `min_labels` have been seen the raw score is shrunk toward the labels' base rate, the less the more labels
there are: a classifier that has seen a handful of labels can say 1e-13, which no one should read as a
probability (a win-back threshold on churn risk never fired in a small shop).

>>> import random
>>> rng = random.Random(1)
>>> calibrator = IsotonicBins(refit_every=100, min_labels=100)
>>> for _ in range(20_000):  # a classifier that says 0.9 when the truth is 0.6, and 0.1 for 0.05
...     raw = rng.choice([0.1, 0.9])
...     calibrator.learn_one(raw, rng.random() < (0.6 if raw == 0.9 else 0.05))
>>> round(calibrator.transform(0.9), 1), abs(calibrator.transform(0.1) - 0.05) < 0.02
(0.6, True)
"""

from __future__ import annotations

import bisect
import math

LOGIT_RANGE = 8.0  # raw scores beyond sigmoid(+-8) share the outermost bins
# Pooled bins and the flat tails would give many customers the same score, and ties lose the raw score's
# ranking: a slope this small keeps the order and moves no score by more than 0.0005.
TIE_BREAK = 1e-3
# The bins' sums are rescaled when their common decay falls below this (new labels then weigh up to 1e6).
RESCALE_BELOW = 1e-6


def logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


def sigmoid(z: float) -> float:
    """The inverse of `logit`, clamped so that no score overflows exp."""
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


class IsotonicBins:
    def __init__(self, bins: int = 24, half_life_labels: float = 50_000, refit_every: int = 500,
                 min_labels: int = 500) -> None:
        self.bins = bins
        self.decay = 0.5 ** (1 / half_life_labels)
        self.refit_every = refit_every
        self.min_labels = min_labels
        # The bins' decayed sums, each kept divided by `_scale` (the decay applied to every bin since the last
        # rescale): ageing every bin is one multiplication, not three per bin (6.2 -> 1.9 µs a label). The
        # `positives`, `totals` and `logit_sums` properties give them decayed.
        self._positives = [0.0] * bins
        self._totals = [0.0] * bins
        self._logit_sums = [0.0] * bins  # where in its bin the scores fall: the bin's point for interpolation
        self._scale = 1.0
        self.n_learned = 0
        self._fitted: list[tuple[float, float]] = []

    @property
    def positives(self) -> list[float]:
        """Each bin's positive labels, decayed."""
        return [value * self._scale for value in self._positives]

    @property
    def totals(self) -> list[float]:
        """Each bin's labels, decayed."""
        return [value * self._scale for value in self._totals]

    @property
    def logit_sums(self) -> list[float]:
        """Each bin's sum of its scores' logits, decayed."""
        return [value * self._scale for value in self._logit_sums]

    def __setstate__(self, state: dict[str, object]) -> None:
        if "positives" in state:  # a checkpoint from before the lazy decay: its sums are already decayed
            state = {**state, "_scale": 1.0}
            for name in ("positives", "totals", "logit_sums"):
                state["_" + name] = state.pop(name)
        self.__dict__.update(state)

    def _bin(self, p: float) -> int:
        z = min(max(logit(p), -LOGIT_RANGE), LOGIT_RANGE)
        return min(self.bins - 1, int((z + LOGIT_RANGE) / (2 * LOGIT_RANGE) * self.bins))

    def learn_one(self, raw: float, label: bool) -> None:
        b = self._bin(raw)
        # Early on, the classifier's scores change meaning as it learns, so the map its first labels drew goes
        # stale: labels are weighed by their rank (the k-th of n weighs k/n, so the first tenth of them keep a 1%
        # share) for as long as that forgets faster than the half-life (until ~1.44 half-lives of labels).
        decay = min(self.decay, 1.0 - 1.0 / (self.n_learned + self.min_labels))
        self._scale *= decay  # every bin ages alike: the sums stay as they are and a new label weighs 1 / scale
        if self._scale < RESCALE_BELOW:
            self._rescale()
        weight = 1.0 / self._scale
        if label:
            self._positives[b] += weight
        self._totals[b] += weight
        self._logit_sums[b] += weight * min(max(logit(raw), -LOGIT_RANGE), LOGIT_RANGE)
        self.n_learned += 1
        if self.n_learned % self.refit_every == 0 and self.n_learned >= self.min_labels:
            self._fitted = self._isotonic()

    def _isotonic(self) -> list[tuple[float, float]]:
        """Pool adjacent violators over the bins' rates (weighted by counts): (bin centre logit, rate) of the
        bins that hold labels, rates non-decreasing."""
        blocks: list[list[float]] = []  # [positives, weight, first bin, last bin]
        positives, totals, logit_sums = self.positives, self.totals, self.logit_sums
        for b in range(self.bins):
            weight = totals[b]
            if weight <= 1e-9:
                continue
            blocks.append([positives[b], weight, b, b])
            while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
                merged = blocks.pop()
                blocks[-1][0] += merged[0]
                blocks[-1][1] += merged[1]
                blocks[-1][3] = merged[3]
        points = []
        for block_positives, weight, first, last in blocks:
            for b in range(int(first), int(last) + 1):
                if totals[b] > 1e-9:
                    points.append((logit_sums[b] / totals[b], block_positives / weight))
        return points

    def _rescale(self) -> None:
        """Fold the scale into the sums before 1 / scale grows large enough to cost precision."""
        scale = self._scale
        for sums in (self._positives, self._totals, self._logit_sums):
            sums[:] = [value * scale for value in sums]
        self._scale = 1.0

    @property
    def fitted(self) -> bool:
        """Whether enough labels have been seen for the map (before, `transform` shrinks toward the base rate)."""
        return bool(self._fitted)

    def transform(self, raw: float) -> float:
        """The calibrated probability of a raw score.

        >>> warming = IsotonicBins(min_labels=100)
        >>> for label in [True] + [False] * 9:  # a base rate of 0.1 so far (0.09: the latest weigh a little more)
        ...     warming.learn_one(0.5, label)
        >>> round(warming.transform(1e-13), 3), round(warming.transform(0.9), 3)  # 10 of 100 labels: mostly the rate
        (0.086, 0.176)
        """
        points = self._fitted
        if not points:
            return self._warming_up(raw)
        return min(1.0, max(0.0, self._mapped(raw, points) + TIE_BREAK * (raw - 0.5)))

    def _warming_up(self, raw: float) -> float:
        # A blend that keeps the raw score's order (the ranking is the classifier's) and its scale once there
        # are enough labels to calibrate.
        total = sum(self._totals)
        if total <= 0:
            return raw
        trust = min(1.0, self.n_learned / self.min_labels)
        return trust * raw + (1.0 - trust) * sum(self._positives) / total  # the scale cancels

    @staticmethod
    def _mapped(raw: float, points: list[tuple[float, float]]) -> float:
        # Linear between the nearest bins that hold labels, in logit space; flat beyond the outermost.
        z = min(max(logit(raw), -LOGIT_RANGE), LOGIT_RANGE)
        at = bisect.bisect_left(points, (z, -1.0))
        if at == 0:
            return points[0][1]
        if at == len(points):
            return points[-1][1]
        (z0, p0), (z1, p1) = points[at - 1], points[at]
        share = (z - z0) / (z1 - z0) if z1 > z0 else 0.0
        return p0 + (p1 - p0) * share
