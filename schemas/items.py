"""Catalog items: what the shop sells, on the compacted `items` topic keyed by item id.

The latest record of a key is the item as it is now; a record with no value (a tombstone) deletes it, as on any
compacted topic. The worker keeps the whole catalog (streams/worker/catalog.py); rules read its fields
(models/rules/). An item the catalog does not know is offered as before there was a catalog.

>>> item = parse_item(b"tea-01", b'{"item_id": "tea-01", "category": "grocery", "price": 4.5, "tags": ["organic"]}')
>>> item.in_stock, item.hidden, item.tags
(True, False, ('organic',))
>>> parse_item(b"tea-01", None) is None  # a tombstone: the item is gone
True
>>> try:
...     parse_item(b"tea-01", b'{"item_id": "tea-01", "category": "grocery", "price": -1}')
... except EventRejected as rejected:
...     print(rejected.reason, "-", rejected.detail)
out_of_range - price: Input should be greater than or equal to 0
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.events import EventRejected, Identifier, Money, _reason_from

MAX_ITEM_BYTES = 16 * 1024
Tag = Annotated[str, Field(min_length=1, max_length=64)]


class CatalogItem(BaseModel):
    """One item of the catalog as it is now."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    item_id: Identifier
    category: Annotated[str, Field(min_length=1, max_length=64)]
    price: Money
    margin: float | None = Field(None, ge=-1, le=1, allow_inf_nan=False,
                                 description="profit as a fraction of the price (-1 to 1); absent: unknown")
    in_stock: bool = True
    hidden: bool = Field(False, description="never shown or offered (rules exclude hidden items by default)")
    tags: Annotated[tuple[Tag, ...], Field(max_length=50)] = ()
    valid_from: AwareDatetime | None = Field(None, description="offered only from this time (event time)")
    valid_to: AwareDatetime | None = Field(None, description="offered only before this time (event time)")

    @model_validator(mode="after")
    def _window_in_order(self) -> CatalogItem:
        if self.valid_from is not None and self.valid_to is not None and self.valid_to <= self.valid_from:
            raise ValueError(f"invalid_window: valid_to {self.valid_to.isoformat()} is not after valid_from "
                             f"{self.valid_from.isoformat()}")
        return self

    @staticmethod
    def epoch(moment: datetime | None) -> float | None:
        return moment.timestamp() if moment is not None else None


def _rejected(error: ValidationError) -> EventRejected:
    first = error.errors(include_url=False)[0]
    message = str(first["msg"])
    if "invalid_window: " in message:
        return EventRejected("invalid_window", message.split("invalid_window: ", 1)[-1])
    if first["type"] in ("less_than_equal", "less_than"):  # bounds above too (margin), unlike events
        return EventRejected("out_of_range", f"{'.'.join(str(part) for part in first['loc'])}: {message}")
    return _reason_from(error)


def item_from_fields(fields: dict[str, Any]) -> CatalogItem:
    """Validate one item given as a mapping (a row of a CSV or JSON Lines file). Raises EventRejected.

    >>> item_from_fields({"item_id": "mug", "category": "home", "price": "7", "in_stock": "false"}).in_stock
    False
    """
    try:
        return CatalogItem.model_validate(fields)
    except ValidationError as error:
        raise _rejected(error) from None


def parse_item(key: bytes | None, raw: bytes | None) -> CatalogItem | None:
    """Validate one record of the items topic: the item, or None for a tombstone (the key's item is deleted).

    Raises EventRejected with a reason code (the events' codes, plus `missing_key`, `invalid_window`)."""
    if not key:
        raise EventRejected("missing_key", "a catalog record is keyed by its item_id")
    if raw is None:
        return None
    if len(raw) > MAX_ITEM_BYTES:
        raise EventRejected("payload_too_large", f"{len(raw)} bytes exceeds the {MAX_ITEM_BYTES} byte limit")
    try:
        item = CatalogItem.model_validate_json(raw)
    except ValidationError as error:
        raise _rejected(error) from None
    if key.decode("utf-8", "replace") != item.item_id:
        raise EventRejected("key_mismatch", f"record key {key!r} differs from item_id {item.item_id!r}")
    return item
