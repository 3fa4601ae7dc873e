"""Read a customer's profile as a website would, by the customer's real id (pseudonymised here if configured)."""

from __future__ import annotations

from streams.privacy import Pseudonymiser
from streams.security import redis_sync
from streams.settings import Settings
from streams.storage import keys


def read_profile(settings: Settings, customer_id: str) -> tuple[str, dict[str, str]]:
    """(the id the customer is stored under, the profile hash; empty when unknown)."""
    stored_id = Pseudonymiser(settings.worker.pseudonymise_key_bytes).apply(customer_id)
    client = redis_sync(settings.redis, decode_responses=True)
    try:
        return stored_id, dict(client.hgetall(keys.profile_key(stored_id)))  # type: ignore[arg-type]
    finally:
        client.close()
