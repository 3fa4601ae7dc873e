"""Tokens and roles (streams/access.py), without any service."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError

from streams.access import (
    OPERATOR,
    VIEWER,
    Principal,
    authenticate,
    hash_token,
    new_token,
    parse_tokens,
    token_entry,
)
from streams.settings import WorkerSettings


def test_tokens_are_configured_by_their_sha256_only() -> None:
    token = new_token()
    entry = token_entry("viewer", "ann", token)
    assert entry == f"viewer:ann:{hashlib.sha256(token.encode()).hexdigest()}"
    assert token not in entry
    assert len(token) >= 43 and new_token() != token  # 256 random bits, URL-safe


def test_authenticate_finds_the_principal_and_nothing_else() -> None:
    viewer, operator = new_token(), new_token()
    entries = parse_tokens(f"{token_entry('viewer', 'ann', viewer)}, {token_entry('operator', 'bob', operator)}")
    assert authenticate(entries, viewer) == Principal("ann", VIEWER)
    assert authenticate(entries, operator) == Principal("bob", OPERATOR)
    for wrong in (None, "", viewer + "x", viewer[:-1], hash_token(viewer)):  # a hash is not a token
        assert authenticate(entries, wrong) is None
    assert authenticate([], viewer) is None


def test_roles_are_ordered() -> None:
    assert Principal("o", OPERATOR).may(VIEWER) and Principal("o", OPERATOR).may(OPERATOR)
    assert Principal("v", VIEWER).may(VIEWER) and not Principal("v", VIEWER).may(OPERATOR)


@pytest.mark.parametrize("value, message", [
    ("viewer:ann", "expected ROLE:NAME:SHA256"),
    ("admin:ann:" + "a" * 64, "role must be one of viewer, operator"),
    ("viewer::" + "a" * 64, "a name is needed"),
    ("viewer:ann:my-plain-token", "not the token itself"),
])
def test_a_malformed_entry_is_refused_without_echoing_it(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        parse_tokens(value)
    assert "my-plain-token" not in str(raised.value)


def test_settings_refuse_a_plain_token_and_half_a_tls_pair(tmp_path: object) -> None:
    with pytest.raises(ValidationError, match="SHA-256"):
        WorkerSettings(web_tokens="operator:ops:plain-token")
    with pytest.raises(ValidationError, match="go together"):
        WorkerSettings(web_tls_certfile="cert.pem")
    assert WorkerSettings().web_tokens == "" and not WorkerSettings().web_metrics_open  # safe defaults
