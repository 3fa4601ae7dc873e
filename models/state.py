"""Per-customer running state: what the engine knows about one customer, folded one event at a time.

The state is updated in event-time order per customer. It is plain data (`to_dict` / `from_dict`) so the
streams layer can persist it atomically with the profile. Duplicate events are filtered before they get
here (the worker's de-duplication): every call to `update` counts.

>>> from schemas.events import parse_event
>>> state = CustomerState("c1")
>>> state.update(parse_event("purchases", b'{"event_id": "e1", "customer_id": "c1", '
...     b'"ts": "2026-01-05T12:00:00+00:00", "lines": [{"item_id": "ele-001", "category": "electronics", '
...     b'"quantity": 2, "unit_price": 10.0}], "total": 20.0}'))
>>> state.purchases, state.monetary, state.top_categories()
(1, 20.0, ['electronics'])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from sys import intern
from typing import Any, cast

from schemas.events import ClickEvent, PurchaseEvent

DAY = 86_400.0
# How much each interaction says about interest in a category.
INTERACTION_WEIGHT = {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "search": 0.0, "purchase": 8.0}
AFFINITY_HALF_LIFE_DAYS = 14.0
RECENT_ITEMS = 10
RECENT_PURCHASES = 20
RECENT_ORDERS = 20
# Items a customer's purchase counts are kept for (the least bought, then the longest ago, dropped beyond).
PURCHASE_COUNTS = 30
# Categories a customer's affinity keeps (the weakest is dropped beyond).
MAX_AFFINITIES = 20
# A session with no event for this long is over, even if the producer reuses its id.
SESSION_GAP_S = 30 * 60


# slots and tuples: the worker holds thousands of states as objects, and every container in them is work
# for the garbage collector's full passes (docs/benchmarks.md). Tuples of plain values are not tracked at all.
@dataclass(slots=True)
class CustomerState:
    customer_id: str
    first_event_ts: float = 0.0
    last_event_ts: float = 0.0
    last_event_type: str | None = None
    first_purchase_ts: float | None = None
    last_purchase_ts: float | None = None
    events: int = 0
    views: int = 0
    clicks: int = 0
    carts: int = 0
    searches: int = 0
    purchases: int = 0
    monetary: float = 0.0
    sessions: int = 0
    session_id: str | None = None
    session_events: int = 0
    affinity: dict[str, float] = field(default_factory=dict)
    affinity_ts: float = 0.0
    recent_items: list[str] = field(default_factory=list)
    recent_purchases: list[tuple[str, float]] = field(default_factory=list)  # (item_id, ts) per order line
    recent_orders: list[float] = field(default_factory=list)  # times of the last RECENT_ORDERS orders
    # item -> (orders with it, the last one's time): a customer's own staples, beyond the last few orders.
    purchase_counts: dict[str, tuple[int, float]] = field(default_factory=dict)
    last_offer: dict[str, Any] | None = None
    offer_times: list[float] = field(default_factory=list)
    segment: int | None = None
    segment_ts: float = 0.0  # event time of the last segment assignment
    # What learners keep per customer, by learner name (e.g. snapshots awaiting their delayed label); timed
    # triggers and the channel caps keep theirs here too, by their names. Values are immutable (tuples of plain
    # values), replaced rather than changed: copies share them.
    learner_data: dict[str, Any] = field(default_factory=dict)
    # Customer timers: when the customer is due a visit without an event (re-scoring, labels to settle),
    # and the stream time the profile's scores were last computed at.
    wake_ts: float | None = None
    scored_ts: float = 0.0
    # Experiments (models/experiments/attribution.py): the customer's membership (name, arm, revenue, attributed
    # revenue, converted, bought), the offers open for attribution and feedback waiting for its offer; tuples.
    experiment: tuple[Any, ...] | None = None
    open_offers: list[tuple[Any, ...]] = field(default_factory=list)
    pending_feedback: list[tuple[Any, ...]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # JSON gives lists back; keep the untracked tuples (and accept states built by hand with lists). Item ids are
        # the catalog's: one string each, shared by every state held (JSON gives each state its own copies).
        self.recent_items = [intern(item) for item in self.recent_items]
        self.recent_purchases = [(intern(item), ts) for item, ts in self.recent_purchases]
        if self.purchase_counts:
            self.purchase_counts = {item: (int(n), float(ts)) for item, (n, ts) in self.purchase_counts.items()}
        if self.experiment is not None:
            self.experiment = _frozen(self.experiment)  # the ghosts inside are tuples too
        if self.open_offers:
            self.open_offers = [_frozen(offer) for offer in self.open_offers]
        if self.pending_feedback:
            self.pending_feedback = [tuple(feedback) for feedback in self.pending_feedback]
        if self.learner_data:
            self.learner_data = {name: _frozen(value) for name, value in self.learner_data.items()}

    # --- updates -----------------------------------------------------------------------------
    def update(self, event: ClickEvent | PurchaseEvent) -> None:
        """Fold one accepted event into the running state."""
        ts = event.epoch
        previous_ts = self.last_event_ts if self.events else None
        if self.events == 0:
            self.first_event_ts = ts
        self.events += 1
        if ts >= self.last_event_ts:
            self.last_event_ts = ts
            self.last_event_type = event.type
        self._track_session(event.session_id, ts, previous_ts)
        if isinstance(event, PurchaseEvent):
            self._add_purchase(event, ts)
        else:
            self._add_click(event, ts)

    def _track_session(self, session_id: str | None, ts: float, previous_ts: float | None) -> None:
        gap = ts - previous_ts if previous_ts is not None else 0.0
        if session_id is None:
            return
        if session_id != self.session_id or gap > SESSION_GAP_S:
            self.sessions += 1
            self.session_id = session_id
            self.session_events = 0
        self.session_events += 1

    def _add_click(self, event: ClickEvent, ts: float) -> None:
        if event.type == "view":
            self.views += 1
        elif event.type == "click":
            self.clicks += 1
        elif event.type == "add_to_cart":
            self.carts += 1
        else:
            self.searches += 1
        if event.category is not None:
            self._add_affinity(event.category, INTERACTION_WEIGHT[event.type], ts)
        if event.item_id is not None:
            self._push_recent_item(intern(event.item_id))

    def _add_purchase(self, event: PurchaseEvent, ts: float) -> None:
        self.purchases += 1
        self.monetary += event.total
        self.first_purchase_ts = min(self.first_purchase_ts or ts, ts)
        self.last_purchase_ts = max(self.last_purchase_ts or ts, ts)
        self.recent_orders.append(ts)
        del self.recent_orders[:-RECENT_ORDERS]
        counts = self.purchase_counts
        for line in event.lines:
            self._add_affinity(line.category, INTERACTION_WEIGHT["purchase"], ts)
            item_id = intern(line.item_id)
            self._push_recent_item(item_id)
            self.recent_purchases.append((item_id, ts))
            n, last = counts.get(item_id, (0, ts))
            counts[item_id] = (n + 1, max(last, ts))
        del self.recent_purchases[:-RECENT_PURCHASES]
        while len(counts) > PURCHASE_COUNTS:
            del counts[min(counts, key=counts.__getitem__)]

    def _push_recent_item(self, item_id: str) -> None:
        if item_id in self.recent_items:
            self.recent_items.remove(item_id)
        self.recent_items.append(item_id)
        del self.recent_items[:-RECENT_ITEMS]

    def _add_affinity(self, category: str, weight: float, ts: float) -> None:
        # Exponential decay in event time: old interests fade, so offers follow the customer.
        if ts > self.affinity_ts:
            decay = 0.5 ** ((ts - self.affinity_ts) / (AFFINITY_HALF_LIFE_DAYS * DAY)) if self.affinity_ts else 1.0
            for cat in self.affinity:
                self.affinity[cat] *= decay
            self.affinity_ts = ts
        self.affinity[category] = self.affinity.get(category, 0.0) + weight
        if len(self.affinity) > MAX_AFFINITIES:
            weakest = min(self.affinity, key=self.affinity.__getitem__)
            del self.affinity[weakest]

    # --- reads -------------------------------------------------------------------------------
    def affinity_share(self) -> dict[str, float]:
        total = sum(self.affinity.values())
        if total <= 0:
            return {}
        return {cat: weight / total for cat, weight in self.affinity.items()}

    def top_categories(self, n: int = 3) -> list[str]:
        return sorted(self.affinity, key=self.affinity.__getitem__, reverse=True)[:n]

    def recency_days(self, now_ts: float) -> float:
        """Days since the last purchase; since first seen for customers who never bought."""
        reference = self.last_purchase_ts if self.last_purchase_ts is not None else self.first_event_ts
        return max(0.0, (now_ts - reference) / DAY)

    def bought_within(self, now_ts: float, within_days: float) -> set[str]:
        """Items bought in the last `within_days` of event time (never offered again that soon). A purchase after
        `now_ts` (read ahead of this event from another topic) is not yet bought at `now_ts`."""
        return {item for item, ts in self.recent_purchases if 0 <= now_ts - ts <= within_days * DAY}

    def purchased_recently(self, item_id: str, now_ts: float, within_days: float) -> bool:
        return item_id in self.bought_within(now_ts, within_days)

    # --- copies ------------------------------------------------------------------------------
    def copy(self) -> CustomerState:
        """An independent copy: taken before an event is applied, so a failure can undo just that event.

        Containers are copied one level deep; everything inside them is immutable (str, float, tuple).
        The body is generated from the field list below: straight-line code, far cheaper than a
        getattr/setattr loop, and this runs once per event.
        """
        return _copy_state(self)

    def restore(self, saved: CustomerState) -> None:
        """Become a copy of `saved` again, in place (callers hold references to this object)."""
        clone = saved.copy()  # `saved` may be restored from again: share no container with it
        for name in _FIELD_NAMES:
            setattr(self, name, getattr(clone, name))

    # --- persistence -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        # Shallow on purpose: the caller serialises it at once. dataclasses.asdict deep-copies every list
        # and was most of the Redis write path under the profiler.
        return {name: getattr(self, name) for name in _FIELD_NAMES}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CustomerState:
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


_FIELD_NAMES = tuple(f.name for f in fields(CustomerState))


def _generate_copy() -> Callable[[CustomerState], CustomerState]:
    # Every field is either immutable or a list/dict of immutables (last_offer may also be None).
    lines = ["def copy_state(s):", "    c = new(CustomerState)"]
    for f in fields(CustomerState):
        container = f.default_factory in (list, dict) or f.name == "last_offer"
        value = f"s.{f.name}" + (f".copy() if s.{f.name} is not None else None" if container else "")
        lines.append(f"    c.{f.name} = {value}")
    lines.append("    return c")
    namespace: dict[str, Any] = {"new": object.__new__, "CustomerState": CustomerState}
    exec("\n".join(lines), namespace)  # generated from our own field names only
    return cast(Callable[[CustomerState], CustomerState], namespace["copy_state"])


_copy_state = _generate_copy()


def _frozen(value: Any) -> Any:
    """JSON's lists back as tuples, all the way down (immutable, and not tracked by the garbage collector)."""
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    return value
