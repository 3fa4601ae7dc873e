"""Realistic synthetic customers for demos, tests and evaluation.

Planted structure the models should recover: customer segments with their own category tastes, spend and
purchase rates; items that go together (bundles of three within a category); a share of customers who buy.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

CATEGORIES = ("electronics", "fashion", "home", "beauty", "sports", "books")
ITEMS_PER_CATEGORY = 30
BUNDLE = 3  # items i, i+1, i+2 of a category are bought together


@dataclass(frozen=True)
class SegmentSpec:
    name: str
    tastes: dict[str, float]
    price_factor: float
    buy_rate: float  # chance a session ends in a purchase
    sessions_weight: float  # how often these customers come back


SEGMENTS = (
    SegmentSpec("electronics spenders", {"electronics": 0.7, "sports": 0.2, "books": 0.1}, 2.0, 0.45, 1.0),
    SegmentSpec("fashion regulars", {"fashion": 0.6, "beauty": 0.35, "home": 0.05}, 1.0, 0.35, 1.5),
    SegmentSpec("home and books occasional", {"home": 0.5, "books": 0.4, "beauty": 0.1}, 0.8, 0.2, 0.6),
    SegmentSpec("bargain browsers", {c: 1 / len(CATEGORIES) for c in CATEGORIES}, 0.5, 0.03, 1.2),
)


@dataclass(frozen=True)
class Item:
    item_id: str
    category: str
    price: float


@dataclass(frozen=True)
class Customer:
    customer_id: str
    segment: int


class SyntheticShop:
    def __init__(self, n_customers: int = 1000, seed: int = 7, prefix: str = "c") -> None:
        self.rng = random.Random(seed)
        self.items: dict[str, list[Item]] = {
            cat: [Item(f"{cat[:3]}-{i:03d}", cat, round(self.rng.lognormvariate(3.2, 0.6), 2))
                  for i in range(ITEMS_PER_CATEGORY)]
            for cat in CATEGORIES
        }
        self.customers = [Customer(f"{prefix}{n:06d}", self.rng.randrange(len(SEGMENTS))) for n in range(n_customers)]
        self._weights = [SEGMENTS[c.segment].sessions_weight for c in self.customers]

    def bundle_of(self, item: Item) -> list[Item]:
        items = self.items[item.category]
        index = items.index(item)
        start = index - index % BUNDLE
        return items[start:start + BUNDLE]

    def session(self, customer: Customer, ts: float, step_s: float = 20.0) -> list[tuple[str, dict[str, Any]]]:
        """One visit: a search perhaps, views within a taste category, bundle views, cart and maybe a purchase."""
        rng = self.rng
        spec = SEGMENTS[customer.segment]
        category = rng.choices(list(spec.tastes), weights=list(spec.tastes.values()))[0]
        # Segments differ in spend: pricier items for big spenders.
        pool = sorted(self.items[category], key=lambda it: it.price)
        third = len(pool) // 3
        band = pool[2 * third:] if spec.price_factor > 1.5 else pool[:third] if spec.price_factor < 0.7 else pool
        anchor = rng.choice(band)
        session_id = uuid.UUID(int=rng.getrandbits(128)).hex[:16]
        events: list[tuple[str, dict[str, Any]]] = []
        clock = ts

        def click(kind: str, item: Item | None = None, query: str | None = None) -> None:
            nonlocal clock
            body: dict[str, Any] = {"event_id": uuid.UUID(int=rng.getrandbits(128)).hex, "type": kind,
                                    "customer_id": customer.customer_id, "session_id": session_id,
                                    "ts": _iso(clock)}
            if item is not None:
                body.update(item_id=item.item_id, category=item.category, price=item.price)
            if query is not None:
                body["query"] = query
            events.append(("clickstream", body))
            clock += rng.expovariate(1 / step_s) if step_s > 0 else 0.0

        if rng.random() < 0.3:
            click("search", query=category)
        click("view", anchor)
        if rng.random() < 0.6:
            click("click", anchor)
        basket = [anchor]
        for other in self.bundle_of(anchor):
            if other is not anchor and rng.random() < 0.6:
                click("view", other)
                basket.append(other)
        for _ in range(rng.randrange(0, 3)):
            click("view", rng.choice(self.items[category]))
        if rng.random() < spec.buy_rate * 1.5:
            for item in basket:
                click("add_to_cart", item)
            if rng.random() < 0.66:
                lines = [{"item_id": it.item_id, "category": it.category, "quantity": 1, "unit_price": it.price}
                         for it in basket]
                events.append(("purchases", {
                    "event_id": uuid.UUID(int=rng.getrandbits(128)).hex, "type": "purchase",
                    "customer_id": customer.customer_id, "session_id": session_id, "ts": _iso(clock),
                    "order_id": f"o-{rng.getrandbits(48):012x}", "lines": lines,
                    "total": round(sum(it.price for it in basket), 2)}))
        return events

    def sessions(self, start_ts: float, mean_gap_s: float = 1.0) -> Iterator[tuple[Customer, float]]:
        """An endless sequence of (customer, start time) visits, active segments coming back more often."""
        ts = start_ts
        while True:
            yield self.rng.choices(self.customers, weights=self._weights)[0], ts
            ts += self.rng.expovariate(1 / mean_gap_s)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


_CORRUPTIONS = ("malformed_json", "unknown_field", "negative_price", "future_ts", "missing_field",
                "wrong_type", "unknown_event_type")


def corrupt(body: dict[str, Any], rng: random.Random) -> tuple[bytes, str]:
    """A realistic bad record derived from a good one; returns (payload, the corruption applied)."""
    kind = rng.choice(_CORRUPTIONS)
    bad = dict(body)
    if kind == "malformed_json":
        return orjson.dumps(bad)[:-7], kind
    if kind == "unknown_field":
        bad["coupon"] = "SPRING"
    elif kind == "negative_price":
        if "price" in bad:
            bad["price"] = -abs(float(bad["price"])) - 1
        else:
            bad["total"] = -1.0
    elif kind == "future_ts":
        bad["ts"] = "2199-01-01T00:00:00+00:00"
    elif kind == "missing_field":
        bad.pop("event_id")
    elif kind == "wrong_type":
        bad["ts"] = "yesterday"
    else:
        bad["type"] = "teleport"
    return orjson.dumps(bad), kind


def history(shop: SyntheticShop, days: float, start_ts: float, visits_per_customer_day: float = 0.5
            ) -> list[tuple[str, dict[str, Any]]]:
    """A labelled event log over `days` of event time, sorted by timestamp (for evaluation and replay)."""
    total_rate = visits_per_customer_day * len(shop.customers) / 86_400.0
    events: list[tuple[str, dict[str, Any]]] = []
    end = start_ts + days * 86_400.0
    for customer, ts in shop.sessions(start_ts, mean_gap_s=1 / total_rate):
        if ts >= end:
            break
        events.extend(shop.session(customer, ts))
    events.sort(key=lambda pair: pair[1]["ts"])
    return events


def write_history_log(path: Path, customers: int, days: float, seed: int = 7, prefix: str = "h") -> int:
    """Write `history()` ending now as JSON Lines (gzip when the name ends in .gz); returns the event count.

    Sample logs for `perso replay` and its benchmark; event ids are deterministic per seed, so writing the
    same log twice and replaying both is the double-replay case.
    """
    import gzip

    shop = SyntheticShop(n_customers=customers, seed=seed, prefix=prefix)
    events = history(shop, days, time.time() - days * 86_400.0 - 60.0)
    opener = gzip.open(path, "wb", compresslevel=3) if path.suffix == ".gz" else open(path, "wb")  # noqa: SIM115
    with opener as out:
        for start in range(0, len(events), 10_000):
            out.write(b"".join(orjson.dumps(body) + b"\n" for _, body in events[start:start + 10_000]))
    return len(events)
