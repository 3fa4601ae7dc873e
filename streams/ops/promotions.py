"""`perso promotion status`: each configured promotion's budget, what is spent and what remains."""

from __future__ import annotations

from typing import Any

from models.promotions import check_promotions
from streams.security import redis_async
from streams.settings import Settings
from streams.storage.promotions import PromotionBudgets


async def promotion_status(settings: Settings) -> list[dict[str, Any]]:
    configs = check_promotions(settings.models.promotions_text())
    if not configs:
        return []
    client = redis_async(settings.redis)
    try:
        spent = await PromotionBudgets(client).spent([config.name for config in configs])
    finally:
        await client.aclose()
    return [{"name": c.name, "filter": c.filter, "share": c.share, "budget": c.budget, "spent": spent[c.name],
             "remaining": max(0, c.budget - spent[c.name])} for c in configs]
