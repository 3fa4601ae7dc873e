"""RFM as marketers know it: recency, frequency and monetary scores 1-5 from quantiles of the customer base,
the RFM code (e.g. "545") and the conventional named groups.

The base's distributions are exact, not sampled: every buyer counts once in each, and moves between buckets
when they buy (last purchase day; order count; spend on a log scale). A score is the customer's mid-rank in
the base (ties share their middle; for recency, a day's buyers all rank as its most recent), cut in fifths:
the top fifth of the base by recency scores R = 5.
With several workers, each scores against the customers of its own partitions, a hash sample of the base.

Groups follow the common R x F map (champions, loyal customers, potential loyalists, new customers,
promising, need attention, about to sleep, at risk, can't lose them, hibernating, lost); customers who
never bought are "prospects" and have no scores.

>>> from models.state import DAY, CustomerState
>>> rfm = RFMModel()
>>> for n in range(10):  # ten buyers: customer n bought n + 1 times, last on day n, spending 10 per order
...     rfm.add_buyer(last_purchase_ts=n * DAY, orders=n + 1, spend=10.0 * (n + 1))
>>> best = CustomerState("c9", purchases=10, monetary=100.0, last_purchase_ts=9 * DAY)
>>> rfm.predict(best, now_ts=10 * DAY)
{'rfm_recency': 5, 'rfm_frequency': 5, 'rfm_monetary': 5, 'rfm_code': '555', 'rfm_group': 'champions'}
>>> rfm.predict(CustomerState("c0", purchases=1, monetary=10.0, last_purchase_ts=0.0), now_ts=10 * DAY)["rfm_group"]
'lost'
>>> today = RFMModel()
>>> for n in range(4):  # a new shop: everyone bought today, once
...     today.add_buyer(last_purchase_ts=0.5 * DAY, orders=1, spend=10.0)
>>> today.predict(CustomerState("c1", purchases=1, monetary=10.0, last_purchase_ts=0.5 * DAY), now_ts=DAY)["rfm_code"]
'533'
"""

from __future__ import annotations

import bisect
import math
from typing import Any

from models.learners.base import EventContext, Learner, TimeContext, register_learner
from models.settings import ModelSettings
from models.state import DAY, CustomerState

PROSPECTS = "prospects"


def rfm_group(r: int, f: int) -> str:
    """The conventional name of an R x F cell.

    >>> rfm_group(5, 5), rfm_group(1, 5), rfm_group(5, 1), rfm_group(2, 2)
    ('champions', "can't lose them", 'new customers', 'hibernating')
    """
    if r == 1 and f == 1:
        return "lost"
    if r <= 2:
        return "hibernating" if f <= 2 else ("at risk" if f <= 4 else "can't lose them")
    if r == 3:
        return "about to sleep" if f <= 2 else ("need attention" if f == 3 else "loyal customers")
    if f >= 4:
        return "champions" if r == 5 else "loyal customers"
    if f >= 2:
        return "potential loyalists"
    return "new customers" if r == 5 else "promising"


class Distribution:
    """Counts of customers per integer bucket, with mid-rank shares; the cumulative view is rebuilt lazily."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self._keys: list[int] | None = None
        self._below: list[int] = []

    def __getstate__(self) -> dict[str, Any]:
        return {"counts": self.counts, "total": self.total}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.counts, self.total = state["counts"], state["total"]
        self._keys, self._below = None, []

    def add(self, bucket: int, weight: int = 1) -> None:
        count = self.counts.get(bucket, 0) + weight
        if count <= 0:  # never negative (a customer restored from before the checkpoint it is removed from)
            self.total -= self.counts.pop(bucket, 0)
        else:
            self.total += count - self.counts.get(bucket, 0)
            self.counts[bucket] = count
        self._keys = None

    def share_below(self, bucket: int, ties: float = 0.5) -> float:
        """Share of the base below `bucket`, counting this share of those in it (0.5: mid-rank)."""
        if self.total <= 0:
            return 0.5
        if self._keys is None:
            self._keys = sorted(self.counts)
            running, self._below = 0, []
            for key in self._keys:
                self._below.append(running)
                running += self.counts[key]
        at = bisect.bisect_left(self._keys, bucket)
        below = self._below[at] if at < len(self._keys) else self.total
        same = self.counts.get(bucket, 0)
        return (below + same * ties) / self.total


def score(share: float) -> int:
    return 1 + min(4, int(share * 5))


def spend_bucket(spend: float) -> int:
    return int(math.log1p(max(0.0, spend)) * 10)  # ten buckets per e-fold: fine enough for fifths


@register_learner
class RFMModel(Learner):
    name = "rfm"
    version = "rfm-1"

    @classmethod
    def from_settings(cls, settings: ModelSettings) -> RFMModel:
        return cls()

    def __init__(self) -> None:
        self.last_purchase_day = Distribution()
        self.orders = Distribution()
        self.spend = Distribution()
        self.groups: dict[str, int] = {}  # customers per group, as of each one's last visit

    def add_buyer(self, last_purchase_ts: float, orders: int, spend: float, weight: int = 1) -> None:
        self.last_purchase_day.add(int(last_purchase_ts // DAY), weight)
        self.orders.add(orders, weight)
        self.spend.add(spend_bucket(spend), weight)

    def observe_before(self, ctx: EventContext) -> None:
        state = ctx.state
        if ctx.is_purchase and state.purchases and state.last_purchase_ts is not None:
            self.add_buyer(state.last_purchase_ts, state.purchases, state.monetary, weight=-1)  # moves buckets

    def learn_one(self, ctx: EventContext) -> None:
        state = ctx.state
        if ctx.is_purchase and state.last_purchase_ts is not None:
            self.add_buyer(state.last_purchase_ts, state.purchases, state.monetary)
        outputs = self.predict(state, ctx.ts)
        ctx.outputs.update(outputs)
        self._count_group(state, outputs["rfm_group"])

    def learn_time(self, ctx: TimeContext) -> None:
        outputs = self.predict(ctx.state, ctx.ts)
        ctx.outputs.update(outputs)
        self._count_group(ctx.state, outputs["rfm_group"])

    def _count_group(self, state: CustomerState, group: str) -> None:
        previous = state.learner_data.get(self.name)
        if previous == group:
            return
        if previous is not None and self.groups.get(previous, 0) > 0:
            self.groups[previous] -= 1
        self.groups[group] = self.groups.get(group, 0) + 1
        state.learner_data[self.name] = group

    def predict(self, state: CustomerState, now_ts: float) -> dict[str, Any]:
        if not state.purchases or state.last_purchase_ts is None:
            return {"rfm_group": PROSPECTS}
        # Recency counts ties as below: everyone who bought on the latest day bought most recently (R = 5), even
        # when that is the whole base (a new shop, the demo); orders and spend keep the mid-rank.
        r = score(self.last_purchase_day.share_below(int(state.last_purchase_ts // DAY), ties=1.0))
        f = score(self.orders.share_below(state.purchases))
        m = score(self.spend.share_below(spend_bucket(state.monetary)))
        return {"rfm_recency": r, "rfm_frequency": f, "rfm_monetary": m, "rfm_code": f"{r}{f}{m}",
                "rfm_group": rfm_group(r, f)}

    def metrics(self) -> dict[str, float]:
        figures = {"buyers": float(self.orders.total)}
        figures.update({f"group_{name.replace(' ', '_').replace(chr(39), '')}": float(count)
                        for name, count in sorted(self.groups.items())})
        return figures
