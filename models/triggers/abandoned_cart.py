"""Abandoned cart: an item added to the cart and not bought within `PERSO_CART_REMINDER_MINUTES` gets one reminder.

An episode is an item added and not bought: it opens at the first add_to_cart of the item, a purchase of the item
ends it, and it lasts `PERSO_CART_EPISODE_DAYS` at most. Adding the item again while its episode lasts (reminded
or not) is the same episode: the reminder stays due at the first add's time plus the delay, and comes once. After
the episode ends (bought, or its days are over) the next add starts a new one. A customer keeps at most
`MAX_EPISODES` episodes (the oldest dropped); each is `(item, category, added_ts, add event id, reminded)`.

>>> from schemas.events import parse_event
>>> def event(kind: str, body: str) -> InputEvent:
...     return parse_event(kind, body.encode(), oldest=None)
>>> add = event("clickstream", '{"event_id": "a1", "type": "add_to_cart", "customer_id": "c1", "session_id": "s", '
...     '"ts": "2026-01-05T12:00:00+00:00", "item_id": "tea", "category": "grocery", "price": 3.5}')
>>> cart, state = AbandonedCart(delay_s=3600), CustomerState("c1")
>>> state.update(add); cart.observe(state, add)
>>> moment = cart.due(state)
>>> moment.key, moment.due_ts - add.epoch
('cart:a1', 3600.0)
>>> cart.decide(OfferRequest(state, moment.due_ts, {}, set())).reason
'still in your cart'
>>> cart.spend(state, moment, moment.due_ts, decided=True); cart.due(state) is None
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.learners.base import Learner
from models.policies.base import Decision, OfferRequest, register_policy
from models.settings import ModelSettings
from models.state import DAY, CustomerState
from models.triggers.base import Moment, TriggerPolicy
from schemas.events import ClickEvent, InputEvent, PurchaseEvent

MAX_EPISODES = 5
ITEM, CATEGORY, ADDED, EVENT, REMINDED = range(5)
REASON = "still in your cart"


@register_policy
class AbandonedCart(TriggerPolicy):
    name = "abandoned_cart"
    version = "abandoned-cart-1"

    def __init__(self, delay_s: float = 3600.0, episode_s: float = 7 * DAY) -> None:
        self.delay_s = delay_s
        self.episode_s = max(episode_s, delay_s)

    @classmethod
    def from_settings(cls, settings: ModelSettings, learners: Mapping[str, Learner]) -> AbandonedCart:
        return cls(settings.cart_reminder_minutes * 60.0, settings.cart_episode_days * DAY)

    def observe(self, state: CustomerState, event: InputEvent) -> None:
        if isinstance(event, ClickEvent):
            if event.type == "add_to_cart" and event.item_id is not None:
                self._added(state, event)
        elif isinstance(event, PurchaseEvent) and state.learner_data.get(self.name):
            bought = {line.item_id for line in event.lines}
            ts = event.epoch
            kept = tuple(e for e in state.learner_data[self.name] if e[ITEM] not in bought or e[ADDED] > ts)
            self._store(state, kept)

    def _added(self, state: CustomerState, event: ClickEvent) -> None:
        ts, item = event.epoch, event.item_id
        episodes = tuple(e for e in state.learner_data.get(self.name, ()) if ts - e[ADDED] < self.episode_s)
        if any(e[ITEM] == item for e in episodes):
            return  # the same episode: its reminder stays due at the first add's time
        # Read ahead from the purchases topic: bought at or after this add, the episode is over before it began.
        if any(bought == item and bought_ts >= ts for bought, bought_ts in state.recent_purchases):
            return
        self._store(state, (*episodes, (item, event.category, ts, event.event_id, False))[-MAX_EPISODES:])

    def _store(self, state: CustomerState, episodes: tuple[Any, ...]) -> None:
        if episodes:
            state.learner_data[self.name] = episodes  # replaced, never changed in place (undo copies share it)
        else:
            state.learner_data.pop(self.name, None)

    def _next(self, state: CustomerState) -> tuple[Any, ...] | None:
        waiting = [e for e in state.learner_data.get(self.name, ()) if not e[REMINDED]]
        return min(waiting, key=lambda e: e[ADDED]) if waiting else None

    def due(self, state: CustomerState) -> Moment | None:
        episode = self._next(state)
        return Moment(f"cart:{episode[EVENT]}", episode[ADDED] + self.delay_s) if episode is not None else None

    def next_due(self, state: CustomerState) -> float | None:
        episodes = state.learner_data.get(self.name)
        if not episodes:
            return None
        waiting = [e[ADDED] for e in episodes if not e[REMINDED]]
        return min(waiting) + self.delay_s if waiting else None

    def decide(self, request: OfferRequest) -> Decision | None:
        episode = self._next(request.state)
        if episode is None or request.now_ts < episode[ADDED] + self.delay_s:
            return None
        if request.now_ts - episode[ADDED] >= self.episode_s or episode[ITEM] in request.excluded:
            return None  # too late to remind (a trigger enabled long after), or the rules exclude the item
        return Decision(episode[ITEM], episode[CATEGORY], 1.0, REASON)

    def spend(self, state: CustomerState, moment: Moment, now_ts: float, decided: bool) -> None:
        self._store(state, tuple((*e[:REMINDED], True) if f"cart:{e[EVENT]}" == moment.key else e
                                 for e in state.learner_data.get(self.name, ())
                                 if now_ts - e[ADDED] < self.episode_s))
