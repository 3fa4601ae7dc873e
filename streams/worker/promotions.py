"""Before a batch's offers are published: reserve the promotions' budgets for its promotion offers in one atomic
round trip, and turn the offers whose promotion is spent back into their ordinary choice (models/promotions.py).

The reservation comes before the customers' states are saved and before anything is published, so a state never
says a promotion's item went out when it did not; a batch retried after a failure reserves the same offer ids
again, which spends nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from models.personalizer import Outcome, Personalizer
from models.promotions import PromotedDecision
from models.state import CustomerState
from schemas.events import CustomerEvent
from schemas.offers import Offer
from streams.storage.promotions import PromotionBudgets
from streams.worker.contracts import offer_from

log = logging.getLogger(__name__)


@dataclass
class PromotionOffer:
    """A promotion's offer of this batch, where it sits among the batch's offers, and what it came from."""

    index: int
    state: CustomerState
    outcome: Outcome
    event: CustomerEvent


async def settle(personalizer: Personalizer, budgets: PromotionBudgets, offers: list[Offer],
                 promoted: Sequence[PromotionOffer]) -> int:
    """Reserve each promotion offer's budget; those refused become their fallback, in `offers` and on the state.
    Returns how many were refused."""
    if not promoted or personalizer.promotions is None:
        return 0
    limits = {p.name: p.config.budget for p in personalizer.promotions.promotions}
    asked = []
    for entry in promoted:
        decision = entry.outcome.decision
        assert isinstance(decision, PromotedDecision)
        asked.append((decision.promotion, offers[entry.index].offer_id))
    reservation = await budgets.reserve(asked, limits)
    refused = 0
    for entry, (_, offer_id), granted in zip(promoted, asked, reservation.granted, strict=True):
        if granted:
            continue
        refused += 1
        personalizer.promotion_refused(entry.state, entry.outcome, offer_id)
        offers[entry.index] = offer_from(entry.event, entry.outcome, personalizer.model_versions())
    for name, remaining in reservation.remaining.items():
        if remaining <= 0 and name not in personalizer.promotions.spent:
            log.info("promotion %r: budget of %d offers spent; its share goes to ordinary offers", name, limits[name])
            personalizer.promotions.spent.add(name)
    return refused
