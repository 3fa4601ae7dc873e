"""Event builders shared by the tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def click(customer: str = "c1", kind: str = "view", item: str = "ele-001", category: str = "electronics",
          price: float = 99.0, session: str = "s1", at: datetime = T0, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"event_id": uuid.uuid4().hex, "type": kind, "customer_id": customer,
                            "session_id": session, "ts": at.isoformat()}
    if kind == "search":
        body["query"] = category
    else:
        body.update(item_id=item, category=category, price=price)
    body.update(extra)
    return body


def purchase(customer: str = "c1", items: tuple[tuple[str, str, float], ...] = (("ele-001", "electronics", 99.0),),
             session: str = "s1", at: datetime = T0, **extra: Any) -> dict[str, Any]:
    lines = [{"item_id": i, "category": c, "quantity": 1, "unit_price": p} for i, c, p in items]
    body: dict[str, Any] = {"event_id": uuid.uuid4().hex, "type": "purchase", "customer_id": customer,
                            "session_id": session, "ts": at.isoformat(), "lines": lines,
                            "total": round(sum(p for _, _, p in items), 2)}
    body.update(extra)
    return body


def feedback(customer: str = "c1", offer_id: str = "c1:e1", kind: str = "delivered", at: datetime = T0,
             **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"event_id": uuid.uuid4().hex, "type": kind, "customer_id": customer,
                            "offer_id": offer_id, "ts": at.isoformat()}
    body.update(extra)
    return body


def raw(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)


def later(minutes: float = 0, days: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes, days=days)


def now_iso(minutes_ago: float = 0) -> datetime:
    """Event time close to the wall clock, as live producers send it."""
    return datetime.now(UTC) - timedelta(minutes=minutes_ago)
