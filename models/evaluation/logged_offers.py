"""A policy evaluated on offers another policy logged: `perso evaluate --policy NAME --from-log FILE`.

The log holds what customers did (the events, in the replay format) and the offers a logging policy made,
each with the probability its item was chosen (as the offers topic carries them). The events run through the
models in event-time order (models/timeline.py) with the target policy deciding; at each logged offer's
trigger event the target's choice is compared with the logged item:

- **Reward** of a logged offer: 1 if the customer bought its item within the attribution window after it (to
  its `expires_at`, else `window_days`), or a `redeemed` feedback names it; offers whose window reaches past the
  log's end are censored.
- **Estimates** (models/evaluation/off_policy.py): IPS and SNIPS of the target's conversion per offer, with
  intervals, the effective sample and the share of logged offers the target agrees with.
- **Direct replay**: in a log whose outcome is the implicit one (a purchase, whatever was offered), the
  target's own item can be checked against what the customer bought too; that figure, at the same moments, is
  what the estimates should agree with there. With real responses to offers (redemptions caused by an offer)
  only the estimates are valid.

The target decides from the customer's state as the events made it; at a moment where it would offer
nothing (its caps), it gets no credit. An exploring target is credited with its probability of the logged
item only where its own draw took that item, so its estimate leans low by at most its exploration share.
Intervals need an effective sample in the hundreds (off_policy.py): a logging policy that rarely makes the
target's choice (uniform over hundreds of items) supports no interval, and the report says so. The target
learns as it would online (the learned policy from its own offers' outcomes in the replay).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from models.evaluation.off_policy import Estimate, Logged, off_policy_estimates
from models.personalizer import Personalizer
from models.state import DAY
from models.timeline import Timeline
from schemas.events import ClickEvent, OfferFeedback, PurchaseEvent

Event = ClickEvent | PurchaseEvent


@dataclass(frozen=True)
class LoggedOffer:
    """The fields of a published offer that off-policy evaluation reads."""

    offer_id: str
    customer_id: str
    item_id: str
    trigger_event_id: str
    event_ts: float
    probability: float = 1.0
    expires_ts: float | None = None

    @classmethod
    def from_offer(cls, body: dict[str, Any]) -> LoggedOffer:
        """From an offer record as the offers topic carries it (timestamps as ISO text or epoch seconds)."""
        try:
            expires = body.get("expires_at")
            return cls(str(body["offer_id"]), str(body["customer_id"]), str(body["item_id"]),
                       str(body["trigger_event_id"]), _epoch(body["event_ts"]), float(body.get("probability", 1.0)),
                       _epoch(expires) if expires is not None else None)
        except (KeyError, ValueError, TypeError) as error:
            raise ValueError(f"not a logged offer ({error!s}): {str(body)[:200]}") from error


def _epoch(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value)).timestamp()


@dataclass
class OffPolicyResult:
    target: str
    logged_offers: int  # read from the log
    scored_offers: int  # their window ends within the log
    logged_rate: float  # the logging policy's observed conversion per offer
    estimates: dict[str, Estimate]
    direct_rate: float | None  # the target's items against what the customers bought, at the same moments

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "logged_offers": self.logged_offers, "scored_offers": self.scored_offers,
                "logged_rate": self.logged_rate, "direct_rate": self.direct_rate,
                "estimates": {name: e.as_dict() for name, e in self.estimates.items()}}


def evaluate_logged_offers(personalizer: Personalizer, events: Iterable[Event | OfferFeedback],
                           offers: Sequence[LoggedOffer], window_days: float = 7.0, alpha: float = 0.05
                           ) -> OffPolicyResult:
    """The target is `personalizer.policy`. Raises ValueError when no logged offer can be scored."""
    log = sorted(events, key=lambda e: e.epoch)
    behaviour = [e for e in log if not isinstance(e, OfferFeedback)]
    redeemed = {e.offer_id for e in log if isinstance(e, OfferFeedback) and e.type == "redeemed"}
    if not behaviour:
        raise ValueError("the log holds no clickstream or purchase events to replay")
    end = behaviour[-1].epoch
    bought: dict[tuple[str, str], list[float]] = {}
    for event in behaviour:
        if isinstance(event, PurchaseEvent):
            for line in event.lines:
                bought.setdefault((event.customer_id, line.item_id), []).append(event.epoch)

    def bought_within(customer: str, item: str, after: float, until: float) -> bool:
        times = bought.get((customer, item), [])
        i = bisect.bisect_right(times, after)
        return i < len(times) and times[i] <= until

    window_s = window_days * DAY
    by_trigger: dict[str, list[LoggedOffer]] = {}
    for offer in offers:
        by_trigger.setdefault(offer.trigger_event_id, []).append(offer)
    rows: list[Logged] = []
    direct: list[float] = []
    timeline = Timeline(personalizer)
    for event in behaviour:
        outcome = timeline.process(event)
        for offer in by_trigger.get(event.event_id, ()):
            until = offer.expires_ts if offer.expires_ts is not None else offer.event_ts + window_s
            if until > end:
                continue  # its outcome is not in the log yet
            reward = offer.offer_id in redeemed or bought_within(offer.customer_id, offer.item_id,
                                                                  offer.event_ts, until)
            chosen = outcome.decision.item_id if outcome.decision is not None else None
            # The target's probability of the logged item: exact for a deterministic target; an exploring one
            # is credited only where its own draw took the logged item (its other items' shares are not known).
            agrees = outcome.decision is not None and chosen == offer.item_id
            rows.append(Logged(offer.probability, float(reward),
                               outcome.decision.probability if agrees and outcome.decision else 0.0))
            direct.append(float(chosen is not None and bought_within(offer.customer_id, chosen, offer.event_ts,
                                                                     until)))
    if not rows:
        raise ValueError(f"none of the {len(offers)} logged offers can be scored: their trigger events are not "
                         "in the log, or their attribution windows reach past its end")
    return OffPolicyResult(
        target=personalizer.policy.name, logged_offers=len(offers), scored_offers=len(rows),
        logged_rate=sum(r.reward for r in rows) / len(rows), estimates=off_policy_estimates(rows, alpha),
        direct_rate=sum(direct) / len(direct) if not redeemed else None)
