"""How the synthetic customers answer the offers they get: the planted truth of the closed-loop simulator.

An offer that fits the customer is often redeemed: its category is one the customer's segment loves, and it
goes with what the customer looked at lately (same bundle). A poor fit is delivered, perhaps opened, and
ignored. A redemption is a purchase of the item (and `redeemed` feedback). Customers also buy the same items
without any offer (the synthetic shop's own sessions): what the holdout measures.

Each offer's answer is drawn from its own generator, seeded by the run's seed and the offer id, so the same
offer gets the same answer whichever arms the experiment has: what makes a counterfactual run (everyone in one
arm) the true effect of that arm.

>>> from streams.datasets.synthetic import SyntheticShop
>>> shop = SyntheticShop(n_customers=10, seed=1)
>>> model = ResponseModel(shop, seed=3)
>>> customer = shop.customers[0]
>>> item = shop.items[max(SEGMENTS[customer.segment].tastes, key=SEGMENTS[customer.segment].tastes.get)][0]
>>> answers = model.answer(customer, "o1", item, recent_items=[item.item_id], ts=1_000.0)
>>> [kind for kind, _ in answers][:1]
['feedback']
>>> model.fit(customer, item, [item.item_id]) > model.fit(customer, item, [])
True
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streams.datasets.synthetic import SEGMENTS, Customer, Item, SyntheticShop

MINUTE = 60.0


@dataclass(frozen=True)
class ResponseRates:
    """The planted probabilities. Redemption given a click grows with fit; a fit of 0 is never redeemed."""

    delivered: float = 0.95
    opened: float = 0.5  # of delivered
    clicked_base: float = 0.1  # of opened, plus clicked_fit x fit
    clicked_fit: float = 0.6
    redeemed_fit: float = 0.6  # of clicked: redeemed_fit x fit
    dismissed: float = 0.3  # of opened and not clicked
    # A reminder of an item the customer left in their cart (a timed trigger's, models/triggers/) fits at least this
    # well: they wanted it already. The planted effect an abandoned-cart experiment measures.
    reminder_fit: float = 0.9


class ResponseModel:
    def __init__(self, shop: SyntheticShop, seed: int = 7, rates: ResponseRates | None = None) -> None:
        self.shop = shop
        self.seed = seed
        self.rates = rates or ResponseRates()
        self._by_id = {customer.customer_id: customer for customer in shop.customers}
        self._items = {item.item_id: item for items in shop.items.values() for item in items}

    def customer(self, customer_id: str) -> Customer | None:
        return self._by_id.get(customer_id)

    def item(self, item_id: str) -> Item | None:
        return self._items.get(item_id)

    def fit(self, customer: Customer, item: Item, recent_items: Sequence[str]) -> float:
        """0..1: how much the customer's segment likes the item's category (against its favourite), and whether
        the item goes with something the customer looked at lately."""
        tastes = SEGMENTS[customer.segment].tastes
        taste = tastes.get(item.category, 0.0) / max(tastes.values())
        bundle = {other.item_id for other in self.shop.bundle_of(item)}
        goes_with = any(recent in bundle for recent in recent_items[-5:])
        return 0.6 * taste + 0.4 * goes_with

    def answer(self, customer: Customer, offer_id: str, item: Item, recent_items: Sequence[str], ts: float,
               reminder: bool = False) -> list[tuple[str, dict[str, Any]]]:
        """The feedback (and purchase, if redeemed) the customer sends for one offer decided at event time `ts`,
        as (kind, body) in time order. `reminder`: the offer reminds them of an item left in their cart."""
        rng = random.Random(f"{self.seed}:{offer_id}")
        rates = self.rates
        fit = self.fit(customer, item, recent_items)
        if reminder:
            fit = max(fit, rates.reminder_fit)
        out: list[tuple[str, dict[str, Any]]] = []
        clock = ts

        def feedback(kind: str, after_s: float, revenue: float | None = None) -> None:
            nonlocal clock
            clock += after_s
            body: dict[str, Any] = {"event_id": uuid.UUID(int=rng.getrandbits(128)).hex, "type": kind,
                                    "customer_id": customer.customer_id, "offer_id": offer_id,
                                    "ts": _iso(clock), "channel": "email"}
            if revenue is not None:
                body["revenue"] = revenue
            out.append(("feedback", body))

        if rng.random() >= rates.delivered:
            return out
        feedback("delivered", rng.uniform(5, 60))
        if rng.random() >= rates.opened:
            return out
        feedback("opened", rng.expovariate(1 / (30 * MINUTE)))
        if rng.random() >= rates.clicked_base + rates.clicked_fit * fit:
            if rng.random() < rates.dismissed:
                feedback("dismissed", rng.uniform(1, 30))
            return out
        feedback("clicked", rng.uniform(1, 30))
        if rng.random() >= rates.redeemed_fit * fit:
            return out
        clock += rng.expovariate(1 / (20 * MINUTE))
        out.append(("purchases", {
            "event_id": uuid.UUID(int=rng.getrandbits(128)).hex, "type": "purchase",
            "customer_id": customer.customer_id, "ts": _iso(clock), "order_id": f"o-{rng.getrandbits(48):012x}",
            "lines": [{"item_id": item.item_id, "category": item.category, "quantity": 1, "unit_price": item.price}],
            "total": item.price}))
        feedback("redeemed", 1.0, revenue=item.price)
        return out


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()
