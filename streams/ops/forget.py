"""`perso forget`: delete what is kept about one customer, and tell running workers to drop their copy."""

from __future__ import annotations

from streams.privacy import Pseudonymiser
from streams.security import redis_async
from streams.settings import Settings
from streams.storage.customer_store import forget_customer_everywhere


async def forget_customer(settings: Settings, customer_id: str) -> tuple[str, int, int]:
    """Delete a customer's profile, state and remembered event ids; tell running workers to drop their copy.

    Returns (id as stored, keys deleted, workers notified). Input topics still hold the raw events until
    their retention expires: a rebuild within that time brings the customer back.
    """
    stored_id = Pseudonymiser(settings.worker.pseudonymise_key_bytes).apply(customer_id)
    client = redis_async(settings.redis)
    try:
        deleted, notified = await forget_customer_everywhere(client, settings.app_id, stored_id)
    finally:
        await client.aclose()
    return stored_id, deleted, notified
