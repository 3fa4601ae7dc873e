"""Timed triggers (offers a moment decides, not an event), one module each; importing one registers it."""

from models.triggers import abandoned_cart, win_back  # noqa: F401  (registers them)
from models.triggers.base import Fired, Moment, TriggerPolicy
from models.triggers.moments import Moments, TriggerSet

__all__ = ["Fired", "Moment", "Moments", "TriggerPolicy", "TriggerSet"]
