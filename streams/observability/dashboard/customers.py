"""The customer page: a search over the profiles, and one customer's profile, what they did lately and their
offers with outcomes and reasons, from what Redis keeps about them (`profile:{id}`, `state:{id}`).

What is kept is what the page can show: the state holds the customer's last viewed items, order lines and order
times (not a full event log), the offers still open for attribution with the feedback so far (an offer closed
after its window only lives on in the experiment's counters), and the last offer with its reason in the profile.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis

from models.experiments.attribution import (
    ARM,
    CONVERTED,
    EXPERIMENT,
    EXPIRES,
    FLAG_OF,
    FLAGS,
    GHOST,
    ID,
    ITEM,
    PRICE,
    PUBLISHED,
    REVENUE,
    TS,
    outcome_of,
)
from streams.privacy import Pseudonymiser
from streams.storage.customer_store import RedisCustomerStore
from streams.storage.keys import state_key

SEARCH_LIMIT = 20
SEARCH_SCAN_BUDGET = 20_000  # keys looked at per search, at most


def _glob_escape(text: str) -> str:
    """Redis MATCH pattern characters taken literally.

    >>> _glob_escape("a*b?[c]")
    'a\\\\*b\\\\?\\\\[c\\\\]'
    """
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


async def search(client: aioredis.Redis, pseudonymiser: Pseudonymiser, query: str) -> list[str]:
    """Customer ids whose id starts with `query` (the exact id only, when ids are pseudonymised: a pseudonym has
    no prefix to search by), at most SEARCH_LIMIT."""
    query = query.strip()
    if not query:
        return []
    if pseudonymiser.enabled:
        return [query] if await client.exists(f"profile:{pseudonymiser.apply(query)}") else []
    found: list[str] = []
    looked = 0
    async for key in client.scan_iter(match=f"profile:{_glob_escape(query)}*", count=1000):
        name = key.decode() if isinstance(key, bytes) else str(key)
        found.append(name.removeprefix("profile:"))
        looked += 1
        if len(found) >= SEARCH_LIMIT or looked >= SEARCH_SCAN_BUDGET:
            break
    return sorted(found)


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts else None


def offer_view(offer: list[Any] | tuple[Any, ...]) -> dict[str, Any]:
    """An open offer as the page shows it: item, when, until, experiment and arm, feedback and its outcome so far.

    >>> view = offer_view(["c1:e1", "tea", 0.0, 86400.0, "x", "nbo", PUBLISHED | FLAG_OF["clicked"], 0.0, 3.5, None])
    >>> view["item_id"], view["feedback"], view["outcome_so_far"], view["sent"]
    ('tea', ['clicked'], 'clicked', True)
    """
    flags = int(offer[FLAGS])
    return {"offer_id": offer[ID], "item_id": offer[ITEM], "decided_at": _iso(offer[TS]),
            "open_until": _iso(offer[EXPIRES]), "experiment": offer[EXPERIMENT] or None, "arm": offer[ARM] or None,
            "sent": bool(flags & PUBLISHED), "ghost": GHOST in str(offer[ID]),
            "feedback": [name for name, flag in FLAG_OF.items() if flags & flag],
            "converted": bool(flags & CONVERTED), "revenue": offer[REVENUE], "price": offer[PRICE],
            "outcome_so_far": outcome_of(flags)}


async def customer_view(store: RedisCustomerStore, pseudonymiser: Pseudonymiser, customer_id: str
                        ) -> dict[str, Any] | None:
    """Profile, recent activity and offers of one customer (their real id; pseudonymised here), None if unknown."""
    stored_id = pseudonymiser.apply(customer_id)
    profile = await store.read_profile(stored_id)
    if not profile:
        return None
    raw = await store.client.get(state_key(stored_id))
    state: dict[str, Any] = orjson.loads(raw) if raw else {}
    last_offer = {k.removeprefix("last_offer_"): v for k, v in profile.items() if k.startswith("last_offer")}
    membership = state.get("experiment")
    return {
        "customer_id": stored_id,
        "profile": profile,
        "recent": {
            "last_event_at": _iso(state.get("last_event_ts")), "last_event_type": state.get("last_event_type"),
            "viewed_items": list(reversed(state.get("recent_items", []))),
            "purchased": [{"item_id": item, "at": _iso(ts)}
                          for item, ts in reversed(state.get("recent_purchases", []))],
            "orders_at": [_iso(ts) for ts in reversed(state.get("recent_orders", []))],
        },
        "last_offer": last_offer or None,
        "open_offers": [offer_view(offer) for offer in reversed(state.get("open_offers", []))],
        "experiment": {"name": membership[0], "arm": membership[1], "revenue": membership[2],
                       "converted": bool(membership[4])} if membership else None,
    }
