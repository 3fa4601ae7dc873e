"""What customers actually did, from the log: the truth every score is measured against.

>>> truth = PurchaseTimes({"c1": [10.0, 50.0]})
>>> truth.bought_within("c1", 5.0, 10.0), truth.bought_within("c1", 10.0, 30.0), truth.bought_within("c2", 0.0, 99.0)
(True, False, False)
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping

from schemas.events import ClickEvent, PurchaseEvent


class PurchaseTimes:
    def __init__(self, times: Mapping[str, list[float]]) -> None:
        self.times = {customer: sorted(ts) for customer, ts in times.items()}

    @classmethod
    def of(cls, events: Iterable[ClickEvent | PurchaseEvent]) -> PurchaseTimes:
        times: dict[str, list[float]] = {}
        for event in events:
            if isinstance(event, PurchaseEvent):
                times.setdefault(event.customer_id, []).append(event.epoch)
        return cls(times)

    def bought_within(self, customer: str, after_ts: float, horizon_s: float) -> bool:
        """A purchase in (after_ts, after_ts + horizon]: the moment's own purchase does not count."""
        times = self.times.get(customer)
        if not times:
            return False
        i = bisect.bisect_right(times, after_ts)
        return i < len(times) and times[i] - after_ts <= horizon_s
