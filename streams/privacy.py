"""Pseudonymous customer ids: a keyed hash applied before anything reaches Redis or the offers topic.

HMAC-SHA256 with a secret key (PERSO_PSEUDONYMISE_KEY): stable, so profiles and offers still join up per
customer, and not reversible or guessable without the key (a plain hash of an e-mail address is). Services
that need to find a customer compute the same pseudonym with the key (`perso pseudonym <id>`).
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "p_"
# 128 bits: collisions are out of reach for any customer base, and the id stays a short Redis key.
DIGEST_HEX_CHARS = 32


CACHE_LIMIT = 200_000


class Pseudonymiser:
    """`apply(customer_id)` returns the pseudonym, or the id unchanged when no key is configured."""

    def __init__(self, key: bytes | None) -> None:
        self.enabled = bool(key)
        self._key = key or b""
        # Busy customers send many events: hash each id once, not once per event.
        self._cache: dict[str, str] = {}

    def apply(self, customer_id: str) -> str:
        if not self.enabled:
            return customer_id
        pseudonym = self._cache.get(customer_id)
        if pseudonym is None:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            digest = hmac.new(self._key, customer_id.encode("utf-8"), hashlib.sha256).hexdigest()
            pseudonym = self._cache[customer_id] = PREFIX + digest[:DIGEST_HEX_CHARS]
        return pseudonym
