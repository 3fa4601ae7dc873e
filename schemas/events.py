"""Input events: clickstream and purchases published by websites, offer feedback published by messaging services.

Every event carries `event_id` (idempotence), `customer_id` (the Kafka key) and `ts` (event time, with a
timezone). Anything the schema does not name is rejected rather than silently dropped, so producers learn
about typos instead of losing data.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

# Ids travel as Kafka keys and Redis key suffixes: keep them short and printable.
Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@\-]+$")]
Money = Annotated[float, Field(ge=0, le=1_000_000_000, allow_inf_nan=False)]

# Clock skew tolerated between producers and the worker, and the oldest event accepted.
MAX_FUTURE_SKEW = timedelta(minutes=5)
OLDEST_ACCEPTED = datetime(2000, 1, 1, tzinfo=UTC)
MAX_EVENT_BYTES = 64 * 1024


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    event_id: Identifier
    customer_id: Identifier
    ts: AwareDatetime

    @field_validator("ts")
    @classmethod
    def _plausible_time(cls, ts: datetime, info: ValidationInfo) -> datetime:
        now = datetime.now(UTC)
        if ts > now + MAX_FUTURE_SKEW:
            raise ValueError(f"ts_in_future: {ts.isoformat()} is more than {MAX_FUTURE_SKEW} ahead of now")
        # A historical replay (parse_event's `oldest=None`) accepts any past time.
        oldest = info.context.get("oldest", OLDEST_ACCEPTED) if info.context else OLDEST_ACCEPTED
        if oldest is not None and ts < oldest:
            raise ValueError(f"ts_too_old: {ts.isoformat()} is before {oldest.date()} (a log of history: "
                             f"perso replay --historical)")
        return ts.astimezone(UTC)

    @property
    def epoch(self) -> float:
        return self.ts.timestamp()


class ClickEvent(_Event):
    """A browsing interaction: view, click, add_to_cart or search."""

    type: Literal["view", "click", "add_to_cart", "search"]
    session_id: Identifier
    item_id: Identifier | None = None
    category: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    price: Money | None = None
    query: Annotated[str, Field(min_length=1, max_length=256)] | None = None

    @model_validator(mode="after")
    def _fields_for_type(self) -> ClickEvent:
        if self.type == "search":
            if self.query is None:
                raise ValueError("missing_field: a search event needs 'query'")
        elif self.item_id is None or self.category is None:
            raise ValueError(f"missing_field: a {self.type} event needs 'item_id' and 'category'")
        return self


class OrderLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    item_id: Identifier
    category: Annotated[str, Field(min_length=1, max_length=64)]
    quantity: Annotated[int, Field(ge=1, le=10_000)]
    unit_price: Money


class PurchaseEvent(_Event):
    """A completed order: one or more lines and the total charged."""

    type: Literal["purchase"] = "purchase"
    order_id: Identifier | None = None
    session_id: Identifier | None = None
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=500)]
    total: Money

    @model_validator(mode="after")
    def _total_matches_lines(self) -> PurchaseEvent:
        expected = sum(line.quantity * line.unit_price for line in self.lines)
        # Discounts and shipping make totals differ a little; a wildly different total is a producer bug.
        if not math.isclose(self.total, expected, rel_tol=0.5, abs_tol=1.0):
            raise ValueError(f"total_mismatch: total {self.total} but lines sum to {expected:.2f}")
        return self


FEEDBACK_TYPES = ("delivered", "opened", "clicked", "dismissed", "redeemed")


class OfferFeedback(_Event):
    """What a messaging service saw happen to one offer it delivered (by the `offer_id` published on the offers
    topic), on the `feedback` topic keyed by customer. A resent record counts once (its `event_id`);
    `revenue` is what a redemption was worth, when the service knows it.

    >>> feedback = parse_event("feedback", b'{"event_id": "f1", "customer_id": "c1", "offer_id": "c1:e9", '
    ...     b'"ts": "2026-01-05T12:00:00+00:00", "type": "clicked", "channel": "email"}')
    >>> feedback.type, feedback.offer_id, feedback.channel
    ('clicked', 'c1:e9', 'email')
    """

    type: Literal["delivered", "opened", "clicked", "dismissed", "redeemed"]
    offer_id: Annotated[str, Field(min_length=1, max_length=300, pattern=r"^[A-Za-z0-9_.:@\-]+$")]
    channel: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    revenue: Money | None = Field(None, description="what a redemption was worth (redeemed only)")
    session_id: Identifier | None = None


# What the customer did on the site (what the learners learn from) and everything the worker consumes.
CustomerEvent = ClickEvent | PurchaseEvent
InputEvent = ClickEvent | PurchaseEvent | OfferFeedback


class EventRejected(Exception):
    """An input record that cannot be accepted. `reason` is a stable machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# The kinds of input event, each on its own topic (the topic names are deployment settings).
_MODEL_FOR_KIND: dict[str, type[ClickEvent] | type[PurchaseEvent] | type[OfferFeedback]] = {
    "clickstream": ClickEvent,
    "purchases": PurchaseEvent,
    "feedback": OfferFeedback,
}
EVENT_KINDS = tuple(_MODEL_FOR_KIND)


def kind_of_body(body: dict[str, object]) -> str:
    """The kind of an event from its content: purchases carry type "purchase" (or order lines), feedback an
    offer id."""
    if "offer_id" in body or body.get("type") in FEEDBACK_TYPES:
        return "feedback"
    return "purchases" if body.get("type") == "purchase" or "lines" in body else "clickstream"

# Codes of our own validators travel as "code: explanation" inside the ValueError message.
_OWN_CODES = ("ts_in_future", "ts_too_old", "missing_field", "total_mismatch")


def _reason_from(error: ValidationError) -> EventRejected:
    first = error.errors(include_url=False)[0]
    kind = first["type"]
    where = ".".join(str(part) for part in first["loc"]) or "event"
    message = str(first["msg"])
    if kind == "json_invalid":
        return EventRejected("malformed_json", message)
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return EventRejected("not_an_object", "the event must be a JSON object")
    if kind == "extra_forbidden":
        return EventRejected("unknown_field", f"field '{where}' is not part of the schema")
    if kind == "missing":
        return EventRejected("missing_field", f"field '{where}' is required")
    if kind == "literal_error" and where == "type":
        return EventRejected("unknown_event_type", message)
    for code in _OWN_CODES:
        if code in message:
            return EventRejected(code, message.split(f"{code}: ", 1)[-1])
    if kind in ("greater_than_equal", "greater_than") or "finite" in kind:
        return EventRejected("out_of_range", f"{where}: {message}")
    return EventRejected("invalid_field", f"{where}: {message}")


def parse_event(kind: str, raw: bytes, key: bytes | None = None,
                oldest: datetime | None = OLDEST_ACCEPTED) -> InputEvent:
    """Validate one record of topic kind `kind` ("clickstream", "purchases" or "feedback").

    Raises EventRejected with a reason code; never anything else for bad input. Events before `oldest` are
    `ts_too_old` (None: history of any age is accepted, as a historical replay asks).

    >>> parse_event("purchases", b'{"event_id": "e1", "customer_id": "c1", "ts": "2026-01-05T12:00:00+00:00", '
    ...             b'"lines": [{"item_id": "tea", "category": "grocery", "quantity": 2, "unit_price": 3.5}], '
    ...             b'"total": 7.0}').total
    7.0
    >>> try:
    ...     parse_event("clickstream", b'{"event_id": "e2", "type": "search", "customer_id": "c1", '
    ...                 b'"session_id": "s1", "ts": "2026-01-05T12:00:00+00:00", "query": "tea", "coupon": "X"}')
    ... except EventRejected as rejected:
    ...     print(rejected.reason, "-", rejected.detail)
    unknown_field - field 'coupon' is not part of the schema
    >>> old = (b'{"event_id": "e3", "customer_id": "c1", "ts": "1998-03-01T10:00:00+00:00", "lines": [{"item_id": '
    ...        b'"tea", "category": "grocery", "quantity": 1, "unit_price": 3.5}], "total": 3.5}')
    >>> parse_event("purchases", old, oldest=None).ts.year
    1998
    """
    model = _MODEL_FOR_KIND.get(kind)
    if model is None:
        raise ValueError(f"unknown event kind {kind!r}")
    if raw is None or len(raw) == 0:
        raise EventRejected("empty_payload", "the record has no value")
    if len(raw) > MAX_EVENT_BYTES:
        raise EventRejected("payload_too_large", f"{len(raw)} bytes exceeds the {MAX_EVENT_BYTES} byte limit")
    try:
        event = model.model_validate_json(raw, context={"oldest": oldest})
    except ValidationError as error:
        raise _reason_from(error) from None
    if key is not None and key.decode("utf-8", "replace") != event.customer_id:
        # State is partitioned by customer: a record keyed otherwise would land on the wrong worker.
        raise EventRejected("key_mismatch", f"record key {key!r} differs from customer_id {event.customer_id!r}")
    return event
