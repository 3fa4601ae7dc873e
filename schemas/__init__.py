"""Event, offer and profile contracts: the single source of truth for every part of the engine."""

from schemas.dead_letter import DeadLetter, encode_payload
from schemas.events import (
    EVENT_KINDS,
    ClickEvent,
    CustomerEvent,
    EventRejected,
    OrderLine,
    PurchaseEvent,
    kind_of_body,
    parse_event,
)
from schemas.offers import Offer
from schemas.profile import ProfileUpdate

__all__ = [
    "EVENT_KINDS",
    "ClickEvent",
    "CustomerEvent",
    "DeadLetter",
    "EventRejected",
    "Offer",
    "OrderLine",
    "ProfileUpdate",
    "PurchaseEvent",
    "encode_payload",
    "kind_of_body",
    "parse_event",
]
