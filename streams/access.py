"""Who may use the worker's web server: bearer tokens, stored only as SHA-256 hashes, each with a role.

`PERSO_WEB_TOKENS` lists `ROLE:NAME:SHA256` entries (comma-separated). The role is `viewer` (the dashboard,
reports, profiles) or `operator` (a viewer who may also start and stop experiments and forget customers); the
name says who in the audit log. A token is 32 random bytes (`perso web-token` makes one), so a plain SHA-256 is
enough at rest: there is nothing to guess by brute force, unlike a password, and a stolen settings file gives no
token back. Checking compares hashes in constant time; a token itself is never stored, printed or logged.

>>> token = "s3cret-token-of-the-test"
>>> tokens = parse_tokens(f"viewer:alice:{hash_token(token)}")
>>> who = authenticate(tokens, token)
>>> who.name, who.role, who.may(VIEWER), who.may(OPERATOR)
('alice', 'viewer', True, False)
>>> authenticate(tokens, "wrong") is None
True
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

VIEWER, OPERATOR = "viewer", "operator"
# Each role may do what the roles before it may.
ROLES = (VIEWER, OPERATOR)
TOKEN_BYTES = 32


@dataclass(frozen=True)
class Principal:
    """Someone who presented a valid token: their name and role."""

    name: str
    role: str

    def may(self, role: str) -> bool:
        """Whether this principal holds `role` or a higher one."""
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True)
class TokenEntry:
    principal: Principal
    digest: str  # SHA-256 hex of the token


def hash_token(token: str) -> str:
    """The SHA-256 hex digest a token is configured by."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (URL-safe, 256 bits)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_entry(role: str, name: str, token: str) -> str:
    """The PERSO_WEB_TOKENS entry for a token.

    >>> token_entry("operator", "ops", "t")  # doctest: +ELLIPSIS
    'operator:ops:e3b98a4da31a127d4bde6e43033f66ba274cab0eb7eb1c70ec41402bf6273dd8'
    """
    parse_tokens(f"{role}:{name}:{'0' * 64}")  # the same checks as a configured entry
    return f"{role}:{name}:{hash_token(token)}"


def parse_tokens(value: str) -> list[TokenEntry]:
    """The entries of PERSO_WEB_TOKENS; ValueError naming what is wrong (never echoing a value that could be a token).

    >>> [e.principal for e in parse_tokens("viewer:ann:" + "a" * 64 + ", operator:bob:" + "b" * 64)]
    [Principal(name='ann', role='viewer'), Principal(name='bob', role='operator')]
    >>> parse_tokens("viewer:ann:not-a-hash")
    Traceback (most recent call last):
    ...
    ValueError: PERSO_WEB_TOKENS entry 1: the third part must be the SHA-256 hex digest of the token (64 hex digits),
    not the token itself
    """
    entries = []
    for number, raw in enumerate((part.strip() for part in value.split(",") if part.strip()), start=1):
        parts = raw.split(":")
        if len(parts) != 3:
            raise ValueError(f"PERSO_WEB_TOKENS entry {number}: expected ROLE:NAME:SHA256")
        role, name, digest = (part.strip() for part in parts)
        if role not in ROLES:
            raise ValueError(f"PERSO_WEB_TOKENS entry {number}: role must be one of {', '.join(ROLES)}")
        if not name:
            raise ValueError(f"PERSO_WEB_TOKENS entry {number}: a name is needed (it is who the audit log names)")
        digest = digest.lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"PERSO_WEB_TOKENS entry {number}: the third part must be the SHA-256 hex digest of the "
                             "token (64 hex digits), not the token itself")
        entries.append(TokenEntry(Principal(name, role), digest))
    return entries


def authenticate(entries: list[TokenEntry], token: str | None) -> Principal | None:
    """The principal whose token this is, or None. Every entry is compared (in constant time), so how long it
    takes says nothing about which entry came close."""
    if not token:
        return None
    digest = hash_token(token)
    found = None
    for entry in entries:
        if hmac.compare_digest(entry.digest, digest):
            found = entry.principal
    return found
