"""Each offer candidate described by what a learned policy needs to rank it: where it comes from, how strongly,
the customer's history with it, its price and popularity, and what the learners say of the customer.

Candidates come from the same sources as `nbo` (models/policies/candidates.py); an item proposed by several
sources keeps each source's strength.

>>> from models.learners.cooccurrence import ItemCooccurrence, ItemInfo
>>> from models.state import CustomerState
>>> items = ItemCooccurrence()
>>> for item in ("tea", "mug"):
...     items.observe_item(ItemInfo(item, "home", 4.0), ts=0.0)
>>> items.learn_together(["tea", "mug"], ts=0.0)
>>> state = CustomerState("c1", recent_items=["tea"], purchases=4, purchase_counts={"tea": (2, 86_400.0)})
>>> found = collect(state, items, None, {"propensity": 0.4}, excluded=set(), now_ts=2 * 86_400.0)
>>> sorted(found)
['mug', 'tea']
>>> x = found["tea"].features
>>> x["again"], x["order_share"], x["within_week"], x["never_bought"], x["together"] > 0  # in 2 of 4 orders
(1.0, 0.5, 1.0, 0.0, False)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from models.learners.cooccurrence import ItemCooccurrence
from models.learners.segments import SegmentFavourites
from models.policies import candidates
from models.state import DAY, CustomerState

SOURCES = ("together", "again", "category", "segment", "popular")
# Every value is bounded (about 0..1) so one learning rate suits them all. The customer x item history is said
# several ways (log count, share of orders and its log, recency buckets, how due it is) and crossed with the item's
# repeat rate: a linear model cannot multiply features itself, and "bought often, lately, an item people re-buy" is
# the signal. The log share: P(in the next order) is about the share, so its log is what a logit adds up.
FEATURES = (*SOURCES, "relevance", "together_strength", "seen_lately", "log_price", "affinity", "log_times",
            "order_share", "log_share", "bought_lately", "never_bought", "within_week", "within_month", "due",
            "repeat_rate", "repeat_x_share", "repeat_x_never", "times_x_lately", "popularity", "popularity_x_never",
            "propensity", "churn_risk")
REPEAT_RATE = 0.2  # an item's repeat rate when nobody counts it
NEVER_BOUGHT_DAYS = 60.0  # what "days since bought" says of an item never bought (the features stay bounded)


@dataclass(slots=True)
class Candidate:
    item_id: str
    category: str | None
    relevance: float = 0.0  # the best source's relevance, as nbo scores it
    source: int = candidates.POPULAR  # that source, and what it names (for the reason in words)
    subject: object = None
    values: tuple[float, ...] = ()  # by FEATURES

    @property
    def features(self) -> dict[str, float]:
        return dict(zip(FEATURES, self.values, strict=True))


# What the sources leave per item while they propose: [best relevance, its source, its subject, the sources
# proposing it (a bit each), the co-occurrence strength]; `Candidates` keeps what describes the item for this
# customer. Plain lists, not objects: a decision hears ~50 proposals and ranks ~30 candidates.
RELEVANCE, SOURCE, SUBJECT, PROPOSED_BY, TOGETHER_STRENGTH = range(5)
_BIT = tuple(1 << source for source in range(len(SOURCES)))
# The sources' flags (FEATURES' first values) of each combination of PROPOSED_BY's bits, built once.
_FLAGS = tuple(tuple(1.0 if by & bit else 0.0 for bit in _BIT) for by in range(1 << len(SOURCES)))


def collect(state: CustomerState, items: ItemCooccurrence, favourites: SegmentFavourites | None,
            outputs: Mapping[str, Any], excluded: set[str], now_ts: float,
            repeat_rates: Mapping[str, float] | None = None) -> Candidates:
    """Every candidate the sources propose that may be offered now, by item. `repeat_rates[item]`: the share of the
    item's buyers who bought it again (the response learner counts it; REPEAT_RATE for an item it has not)."""
    proposed: dict[str, list[Any]] = {}
    together = candidates.TOGETHER

    def sink(item_id: str, relevance: float, source: int, subject: object) -> None:
        if item_id in excluded:
            return
        entry = proposed.get(item_id)
        if entry is None:
            entry = proposed[item_id] = [0.0, candidates.POPULAR, None, 0, 0.0]
        entry[PROPOSED_BY] |= _BIT[source]
        if source == together and relevance > entry[TOGETHER_STRENGTH]:
            entry[TOGETHER_STRENGTH] = relevance
        if relevance > entry[RELEVANCE]:
            entry[RELEVANCE], entry[SOURCE], entry[SUBJECT] = relevance, source, subject

    share = state.affinity_share()
    bought = {item_id: counted for item_id, counted in state.purchase_counts.items() if counted[1] <= now_ts}

    def staples(state: CustomerState, sink: candidates.Sink) -> None:
        # What the customer bought before, over more orders than the last few (nbo's `buy_again` reads those).
        for item_id, (times, _) in bought.items():
            sink(item_id, 0.25 + 0.15 * (times - 1), candidates.AGAIN, times)

    candidates.propose(state, items, favourites, outputs, share, sink, again=staples, popular_k=10)
    return Candidates(proposed, state, items, outputs, share, bought, now_ts, repeat_rates)


class Candidates(Mapping[str, Candidate]):
    """One decision's candidates, by item. Each is described by what it costs little to look up (its item, the
    customer's history with it); its FEATURES values are built only when asked (`candidates[item].values`): a
    decision ranks ~30 candidates by `logits`, which reads the same inputs without building them, and keeps the
    values of the few it offers or teaches (building every vector was a third of a learned decision). `logits`
    looks the inputs up as it scores (one pass over the candidates, not two); asked for values first, the
    candidates are looked up alone."""

    def __init__(self, proposed: dict[str, list[Any]], state: CustomerState, items: ItemCooccurrence,
                 outputs: Mapping[str, Any], share: dict[str, float], bought: dict[str, tuple[int, float]],
                 now_ts: float, repeat_rates: Mapping[str, float] | None) -> None:
        self._proposed = proposed
        self.propensity = float(outputs.get("propensity") or 0.5)
        self.churn = float(outputs.get("churn_risk") or 0.5)
        self.orders = max(1, state.purchases)
        placed = state.recent_orders
        self.gap_days = max(1.0, (placed[-1] - placed[0]) / (len(placed) - 1) / DAY) if len(placed) > 1 else 30.0
        self._inputs = (state, items, share, bought, now_ts, repeat_rates)
        # Per item, what its values are built from: (category, seen lately, log price, affinity, repeat rate,
        # popularity, history: (times bought, days since; capped as an item never bought says) or None).
        self._about: dict[str, tuple[Any, ...]] = {}

    def __getitem__(self, item_id: str) -> Candidate:
        relevance, source, subject, _, _ = entry = self._proposed[item_id]
        about = self._about_of(item_id)
        return Candidate(item_id, about[0], relevance, source, subject, self._values(entry, about))

    def values_of(self, item_id: str) -> tuple[float, ...]:
        """`self[item_id].values`, without the Candidate."""
        return self._values(self._proposed[item_id], self._about_of(item_id))

    def __iter__(self) -> Iterator[str]:
        return iter(self._proposed)

    def __len__(self) -> int:
        return len(self._proposed)

    def relevance(self) -> list[tuple[float, str]]:
        """(relevance, item) of every candidate: how nbo would rank them."""
        return [(entry[RELEVANCE], item_id) for item_id, entry in self._proposed.items()]

    def _about_of(self, item_id: str) -> tuple[Any, ...]:
        about = self._about.get(item_id)
        if about is None:  # not scored yet: look every candidate up
            self.logits(_NO_WEIGHTS)
            about = self._about[item_id]
        return about

    def _values(self, entry: list[Any], about: tuple[Any, ...]) -> tuple[float, ...]:
        relevance, _, _, by, together_strength = entry
        _, seen, log_price, affinity, repeat, popularity, history = about
        # A tuple and one concatenation: half the time of unpacking it into a new tuple (0.14 against 0.29 µs).
        sources = _FLAGS[by]
        if history is None:  # never bought: the history features say so (bounded, as if bought long ago)
            return sources + (relevance, together_strength, seen, log_price, affinity,  # noqa: RUF005
                              0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, repeat, 0.0, repeat, 0.0, popularity, popularity,
                              self.propensity, self.churn)
        times, days = history
        log_times, order_share, log_share, lately, due = self._bought(times, days)
        return sources + (relevance, together_strength, seen, log_price, affinity,  # noqa: RUF005
                          log_times, order_share, log_share, lately, 0.0,
                          1.0 if days < 7.0 else 0.0, 1.0 if 7.0 <= days < 30.0 else 0.0,
                          due, repeat, repeat * order_share, 0.0,
                          log_times * lately, popularity, 0.0, self.propensity, self.churn)

    def _bought(self, times: int, days: float) -> tuple[float, float, float, float, float]:
        """What the customer's history with an item they bought `times` times, the last `days` ago, says: its
        log_times, order_share, log_share, bought_lately and due values (`_values` and `logits` both read them)."""
        order_share = min(1.0, times / self.orders)
        return (math.log1p(times) / 3.0, order_share, max(math.log(order_share), -5.0) / 5.0 + 1.0,
                math.exp(-days / 14.0), min(days / self.gap_days, 4.0) / 4.0)

    def logits(self, scorer: CandidateScorer) -> list[tuple[float, str]]:
        """(intercept + weights . values, item) of every candidate, the values never built: the weights are
        folded by `scorer`. Equal to the dot product up to rounding (tests/models/policies/test_candidates.py).
        Each candidate's inputs are looked up here, as it is scored, and kept for `values_of`."""
        state, items, share, bought, now_ts, repeat_rates = self._inputs
        # The hot loop of a decision (~30 candidates): lookups bound once, branches hoisted out of it.
        info_of = items.info.get
        weight_of = items.item_weight.get
        bought_get = bought.get
        share_get = share.get
        rate_of = (repeat_rates or {}).get
        top = items.popular(None, k=1)
        log_top = math.log1p(weight_of(top[0], 0.0)) if top else 0.0
        top_or_inf = log_top if log_top > 0 else math.inf  # popularity: log1p(weight) / log_top, or 0 without one
        log = math.log1p
        # How lately the customer looked at (or bought) each of their recent items: 1 the latest, x 0.7 per step.
        seen_get = {item_id: 0.7**age for age, item_id in enumerate(reversed(state.recent_items))}.get
        never_days = NEVER_BOUGHT_DAYS
        about = self._about
        (w_relevance, w_together, w_seen, w_price, w_affinity, w_log_times, w_order_share, w_log_share,
         w_lately, w_within_week, w_within_month, w_due, w_repeat, w_repeat_share, w_times_lately,
         w_popularity) = scorer.weights
        by_sources = scorer.by_sources
        base = scorer.intercept + scorer.w_propensity * self.propensity + scorer.w_churn * self.churn
        never_base = base + scorer.w_never
        w_repeat_never, w_popularity_never = w_repeat + scorer.w_repeat_never, w_popularity + scorer.w_popularity_never
        bought_values = self._bought
        scored = []
        for item_id, (relevance, _, _, by, together_strength) in self._proposed.items():
            info = info_of(item_id)
            if info is not None:
                category = info.category
                log_price, affinity = log(info.price) / 5.0, share_get(category, 0.0)
            else:
                category, log_price, affinity = None, 0.0, share_get("", 0.0)
            seen, repeat = seen_get(item_id, 0.0), rate_of(item_id, REPEAT_RATE)
            popularity = log(weight_of(item_id, 0.0)) / top_or_inf
            z = (by_sources[by] + w_relevance * relevance + w_together * together_strength + w_seen * seen
                 + w_price * log_price + w_affinity * affinity)
            counted = bought_get(item_id)
            if counted is None:
                history = None
                z += never_base + w_repeat_never * repeat + w_popularity_never * popularity
            else:
                times, days = history = counted[0], min((now_ts - counted[1]) / DAY, never_days)
                log_times, order_share, log_share, lately, due = bought_values(times, days)
                z += (base + w_log_times * log_times + w_order_share * order_share + w_log_share * log_share
                      + w_lately * lately + (w_within_week if days < 7.0 else w_within_month if days < 30.0 else 0.0)
                      + w_due * due + (w_repeat + w_repeat_share * order_share) * repeat
                      + w_times_lately * log_times * lately + w_popularity * popularity)
            about[item_id] = (category, seen, log_price, affinity, repeat, popularity, history)
            scored.append((z + 1e-6 * relevance, item_id))  # the relevance breaks ties
        return scored


class CandidateScorer:
    """A linear model's weights over FEATURES, regrouped as `Candidates.logits` reads them: the sources' flags
    summed once per combination, the customer's own values (propensity, churn risk) and the constant ones of an
    item never bought kept apart.

    >>> scorer = CandidateScorer(0.5, [1.0] * len(FEATURES))
    >>> scorer.by_sources[0b00011], scorer.w_never
    (2.0, 1.0)
    """

    def __init__(self, intercept: float, weights: Sequence[float]) -> None:
        w = dict(zip(FEATURES, weights, strict=True))
        self.intercept = intercept
        # Every combination of the sources' flags: a combination is the one without its highest flag, plus it.
        by_sources = [0.0]
        for name in SOURCES:
            by_sources += [total + w[name] for total in by_sources]
        self.by_sources = tuple(by_sources)
        self.weights = tuple(w[name] for name in (
            "relevance", "together_strength", "seen_lately", "log_price", "affinity", "log_times", "order_share",
            "log_share", "bought_lately", "within_week", "within_month", "due", "repeat_rate", "repeat_x_share",
            "times_x_lately", "popularity"))
        self.w_never, self.w_repeat_never = w["never_bought"], w["repeat_x_never"]
        self.w_popularity_never = w["popularity_x_never"]
        self.w_propensity, self.w_churn = w["propensity"], w["churn_risk"]


_NO_WEIGHTS = CandidateScorer(0.0, [0.0] * len(FEATURES))  # scores nothing: looks the candidates up
