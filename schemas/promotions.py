"""Promotions as configured: a share of decisions reserved for items matching a filter, within a budget of offers.

`PERSO_PROMOTIONS` (or `PERSO_PROMOTIONS_FILE`) holds a JSON list of these. The filter is a rule expression over
item fields (models/rules/); the budget is enforced across workers in Redis (streams/storage/promotions.py).

>>> [p.name for p in parse_promotions('[{"name": "spring", "filter": "\\\\"organic\\\\" in item.tags", '
...                                   '"share": 0.1, "budget": 500}]')]
['spring']
>>> parse_promotions('[{"name": "spring", "filter": "item.hidden", "share": 2, "budget": 5}]')
Traceback (most recent call last):
ValueError: promotion 1: share: Input should be less than or equal to 1
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PromotionName = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_\-]+$")]


class PromotionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: PromotionName
    filter: str = Field(min_length=1, max_length=2000, description="a rule expression over item fields: the "
                        "items this promotion offers")
    share: float = Field(gt=0, le=1, description="the share of decisions reserved for it (0-1)")
    budget: int = Field(ge=1, description="offers it may make in all, across workers")
    reason: str | None = Field(None, min_length=1, max_length=200, description="the offer's reason; default "
                               "'on promotion: NAME'")


def parse_promotions(text: str) -> list[PromotionConfig]:
    """Promotions from JSON (a list of objects); ValueError says which one is wrong and why."""
    if not text.strip():
        return []
    try:
        raw = TypeAdapter(list[dict[str, object]]).validate_json(text)
    except ValidationError as error:
        raise ValueError(f"promotions must be a JSON list of objects: {error.errors(include_url=False)[0]['msg']}"
                         ) from None
    promotions = []
    for number, entry in enumerate(raw, start=1):
        try:
            promotions.append(PromotionConfig.model_validate(entry))
        except ValidationError as error:
            first = error.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ValueError(f"promotion {number}: {where + ': ' if where else ''}{first['msg']}") from None
    names = [p.name for p in promotions]
    if len(set(names)) != len(names):
        raise ValueError(f"two promotions share a name: {', '.join(names)}")
    total = sum(p.share for p in promotions)
    if total > 1 + 1e-9:
        raise ValueError(f"the promotions' shares add up to {total:g}, more than 1")
    return promotions
