"""A learner with a bug that only some events trigger: it raises on any event naming the item "poison".
The fault suite runs a real worker with it (PERSO_PLUGINS=tests.plugins.poison, PERSO_LEARNERS=...,poison)."""

from __future__ import annotations

from models.learners import EventContext, Learner, register_learner
from schemas.events import ClickEvent


@register_learner
class Poisoned(Learner):
    name = "poison"
    version = "poison-1"

    def learn_one(self, ctx: EventContext) -> None:
        if isinstance(ctx.event, ClickEvent) and ctx.event.item_id == "poison":
            ctx.state.views += 1000  # half-way through, as a real bug would leave it
            raise ZeroDivisionError("float division by zero")
        self.n_learned += 1
