"""Event, offer and profile contracts: the single source of truth for every part of the engine."""

from schemas.dead_letter import DeadLetter
from schemas.events import (
    ClickEvent,
    CustomerEvent,
    EventRejected,
    OrderLine,
    PurchaseEvent,
    parse_event,
)
from schemas.offers import Offer
from schemas.profile import ProfileUpdate

__all__ = [
    "ClickEvent",
    "CustomerEvent",
    "DeadLetter",
    "EventRejected",
    "Offer",
    "OrderLine",
    "ProfileUpdate",
    "PurchaseEvent",
    "parse_event",
]
