"""A trivial learner and a trivial offer policy, added the way any plug-in is: this one file, registered when
it is imported (PERSO_PLUGINS=tests.plugins.trivial) and enabled by configuration (PERSO_LEARNERS,
PERSO_POLICY). A built-in one is the same file under models/learners or models/policies, plus its module
name on the import line of that package's __init__.py."""

from __future__ import annotations

from models.learners import EventContext, Learner, register_learner
from models.policies import Decision, OfferPolicy, OfferRequest, register_policy


@register_learner
class EventCounter(Learner):
    name = "event-counter"
    version = "count-1"

    def learn_one(self, ctx: EventContext) -> None:
        self.n_learned += 1
        ctx.outputs["events_seen"] = self.n_learned

    def metrics(self) -> dict[str, float]:
        return {"events": float(self.n_learned)}


@register_policy
class HouseSpecial(OfferPolicy):
    name = "house-special"
    version = "special-1"

    def decide(self, request: OfferRequest) -> Decision | None:
        return Decision("house-special", "specials", 1.0, f"our special ({request.outputs['events_seen']} events)")
