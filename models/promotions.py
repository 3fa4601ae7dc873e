"""Promotions: a share of decisions reserved for items matching a filter, each within a budget of offers.

A decision falls in a promotion's share by a stable hash of the customer and the moment (a replay decides the
same). Then the policy chooses again among the items matching the promotion's filter (and every rule and
exclusion as always); if it finds one, the decision is a `PromotedDecision` carrying the ordinary choice as its
fallback. Models cannot reach Redis: the worker reserves the budget for a batch's promotion offers in one atomic
round trip before publishing (streams/worker/promotions.py) and, where the budget is spent, `refused` turns the
offer back into its fallback. A promotion the worker reports spent is not proposed any more.

>>> from models.catalog import Catalog, CatalogEntry
>>> from schemas.promotions import PromotionConfig, parse_promotions
>>> catalog = Catalog()
>>> promotions = Promotions([PromotionConfig(name="tea", filter='"organic" in item.tags', share=1.0, budget=5)],
...                         catalog)
>>> catalog.apply("green", CatalogEntry("green", "grocery", 4.0, tags=("organic",)))
>>> catalog.apply("black", CatalogEntry("black", "grocery", 3.0))
>>> sorted(promotions.promotions[0].matching), promotions.pick("c1", 0.0).name
(['green'], 'tea')
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from models.catalog import Catalog, CatalogEntry
from models.experiments.attribution import FEATURES, ID, ITEM, PRICE
from models.policies.base import Decision, OfferPolicy
from models.rules.expressions import RuleError, compile_expression
from models.rules.rules import ITEM_FIELDS
from models.state import CustomerState
from schemas.promotions import PromotionConfig, parse_promotions

if TYPE_CHECKING:
    from models.policies.guardrails import Guardrails
    from models.rules import RuleSet


def check_promotions(text: str) -> list[PromotionConfig]:
    """Parse promotions and compile their filters (item fields only); ValueError says what is wrong."""
    configs = parse_promotions(text)
    for config in configs:
        try:
            compile_expression(config.filter, {"item": ITEM_FIELDS})
        except RuleError as error:
            raise RuleError(f"promotion {config.name!r}: {error.reason}", config.filter, error.column) from None
    return configs


@dataclass(frozen=True)
class PromotedDecision(Decision):
    """An offer of a promotion, subject to its budget; `fallback` is what goes out if the budget is spent."""

    promotion: str = ""
    fallback: Decision | None = None


class Promotion:
    def __init__(self, config: PromotionConfig, catalog: Catalog) -> None:
        self.config = config
        self.name = config.name
        self.reason = config.reason or f"on promotion: {config.name}"
        try:
            self.filter = compile_expression(config.filter, {"item": ITEM_FIELDS})
        except RuleError as error:
            raise RuleError(f"promotion {config.name!r}: {error.reason}", config.filter, error.column) from None
        self.matching: set[str] = set()  # catalog items the filter selects
        for entry in catalog:
            self._judge(entry.item_id, entry)
        catalog.watch(self._judge)

    def _judge(self, item_id: str, entry: CatalogEntry | None) -> None:
        if entry is not None and self.filter.evaluate(entry, {}):
            self.matching.add(item_id)
        else:
            self.matching.discard(item_id)


class Promotions:
    def __init__(self, configs: Sequence[PromotionConfig], catalog: Catalog) -> None:
        self.promotions = [Promotion(config, catalog) for config in configs]
        self.spent: set[str] = set()  # promotions whose budget the worker found spent
        # The hash's [0, 1) range cut into each promotion's share, in order; the rest is no promotion.
        self._bounds: list[tuple[float, Promotion]] = []
        upper = 0.0
        for promotion in self.promotions:
            upper += promotion.config.share
            self._bounds.append((upper, promotion))

    def pick(self, customer_id: str, now_ts: float) -> Promotion | None:
        """The promotion this decision falls in, if any: a stable hash of the customer and the moment."""
        draw = zlib.crc32(f"{customer_id}:{now_ts!r}".encode()) / 4_294_967_296.0
        for upper, promotion in self._bounds:
            if draw < upper:
                return promotion
        return None

    def apply(self, rails: Guardrails, policy: OfferPolicy, state: CustomerState, now_ts: float,
              outputs: Mapping[str, Any], rules: RuleSet | None, ordinary: Decision | None) -> Decision | None:
        """The decision, a promotion's offer instead when it falls in one's share and an item of it is allowed."""
        if ordinary is None or not self._bounds:
            return ordinary
        promotion = self.pick(state.customer_id, now_ts)
        if promotion is None or promotion.name in self.spent or not promotion.matching:
            return ordinary
        chosen = rails.choose(policy, state, now_ts, outputs, rules, only=promotion.matching)
        if chosen is None or chosen.item_id not in promotion.matching or rails.repeats(state, chosen, now_ts):
            return ordinary
        return PromotedDecision(chosen.item_id, chosen.category, chosen.score, promotion.reason,
                                probability=chosen.probability, features=chosen.features, examples=chosen.examples,
                                promotion=promotion.name, fallback=ordinary)

    @staticmethod
    def refused(state: CustomerState, decision: PromotedDecision, offer_id: str, price: float | None) -> Decision:
        """The promotion's budget was spent: the customer's state says the fallback went out (the same record the
        guardrails keep, and the offer open for attribution under the fallback's item). Returns the fallback."""
        fallback = decision.fallback
        assert fallback is not None  # a promotion is proposed only beside an ordinary choice
        if state.last_offer is not None and state.last_offer.get("item_id") == decision.item_id:
            state.last_offer = {**state.last_offer, "item_id": fallback.item_id, "score": fallback.score,
                                "reason": fallback.reason}
        state.open_offers = [
            (*offer[:ITEM], fallback.item_id, *offer[ITEM + 1:PRICE], price,
             fallback.features if offer[FEATURES] is not None else None, *offer[FEATURES + 1:])
            if offer[ID] == offer_id else offer for offer in state.open_offers]
        return replace(fallback)
