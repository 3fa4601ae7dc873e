"""Hypothesis strategies: valid events, and the ways producers get them wrong."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import strategies as st

CUSTOMERS = ["c1", "c2", "c3"]
ITEMS = [("ele-1", "electronics", 99.0), ("fas-1", "fashion", 25.0), ("hom-1", "home", 40.0)]

# mutation name -> the reason code parse_event must give (None: still valid)
MUTATIONS: dict[str, str | None] = {
    "none": None,
    "malformed_json": "malformed_json",
    "not_an_object": "not_an_object",
    "empty": "empty_payload",
    "huge": "payload_too_large",
    "unknown_field": "unknown_field",
    "missing_customer": "missing_field",
    "unknown_type": "unknown_event_type",
    "wrong_type": "invalid_field",
    "negative_price": "out_of_range",
    "future_ts": "ts_in_future",
    "ancient_ts": "ts_too_old",
    "naive_ts": "invalid_field",
}


@st.composite
def valid_event(draw: st.DrawFn, prefix: str = "") -> tuple[str, dict[str, Any]]:
    """(topic kind, body) of a valid click or purchase in the last day."""
    customer = prefix + draw(st.sampled_from(CUSTOMERS))
    at = datetime.now(UTC) - timedelta(seconds=draw(st.integers(60, 86_400)))
    item, category, price = draw(st.sampled_from(ITEMS))
    base = {"event_id": uuid.uuid4().hex, "customer_id": customer, "ts": at.isoformat(), "session_id": "s1"}
    if draw(st.booleans()):
        quantity = draw(st.integers(1, 3))
        return "purchases", {**base, "type": "purchase", "total": price * quantity,
                             "lines": [{"item_id": item, "category": category, "quantity": quantity,
                                        "unit_price": price}]}
    kind = draw(st.sampled_from(["view", "click", "add_to_cart"]))
    return "clickstream", {**base, "type": kind, "item_id": item, "category": category, "price": price}


def mutate(kind: str, body: dict[str, Any], mutation: str, noise: bytes) -> bytes:
    """The record bytes after applying `mutation` to a valid body."""
    bad = dict(body)
    if mutation == "malformed_json":
        return orjson.dumps(bad)[: max(1, len(noise) % 20)] + b"\x00{"
    if mutation == "not_an_object":
        return orjson.dumps([bad])
    if mutation == "empty":
        return b""
    if mutation == "huge":
        bad["session_id"] = "s" * 70_000
    elif mutation == "unknown_field":
        bad["coupon"] = "SALE"
    elif mutation == "missing_customer":
        del bad["customer_id"]
    elif mutation == "unknown_type":
        bad["type"] = "teleport" if kind == "clickstream" else "refund"
    elif mutation == "wrong_type":  # (an integer ts is fine: epoch seconds)
        bad["session_id"] = {"id": 1}
    elif mutation == "negative_price":
        if kind == "clickstream":
            bad["price"] = -1.0
        else:
            bad["lines"] = [{**bad["lines"][0], "unit_price": -1.0}]
    elif mutation == "future_ts":
        bad["ts"] = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    elif mutation == "ancient_ts":
        bad["ts"] = "1990-01-01T00:00:00+00:00"
    elif mutation == "naive_ts":
        bad["ts"] = "2026-01-01T00:00:00"
    return orjson.dumps(bad)


@st.composite
def record(draw: st.DrawFn, prefix: str = "") -> tuple[str, bytes, dict[str, Any], str]:
    """(kind, bytes, the valid body it came from, mutation name)."""
    kind, body = draw(valid_event(prefix))
    mutation = draw(st.sampled_from(list(MUTATIONS)))
    return kind, mutate(kind, body, mutation, draw(st.binary(max_size=20))), body, mutation
