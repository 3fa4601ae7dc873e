"""Credentials and HTTP for tests that talk to a worker's web server (every path but /health needs a token)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

from streams.access import token_entry

VIEWER_TOKEN = "viewer-token-of-the-integration-tests"
OPERATOR_TOKEN = "operator-token-of-the-integration-tests"
# PERSO_WEB_TOKENS for a test worker: hashes only, as in production.
WEB_TOKENS = ",".join([token_entry("viewer", "test-viewer", VIEWER_TOKEN),
                       token_entry("operator", "test-operator", OPERATOR_TOKEN)])


def request(url: str, token: str | None = VIEWER_TOKEN, method: str = "GET", body: Any = None,
            headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None,
            timeout: float = 10) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, headers) of one request, with `Authorization: Bearer token` unless token is None; HTTP errors
    are answers too."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    if data is not None:
        sent["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def get_json(url: str, token: str | None = VIEWER_TOKEN) -> Any:
    status, body, _ = request(url, token)
    assert status == 200, (status, body[:300])
    return json.loads(body)


def wait_until_serving(base: str, timeout_s: float = 60) -> None:
    """Until the worker's web server answers /health (a ready probe alone does not say so: another test may have
    left a `probe` profile in the same Redis database, and the server starts listening after the consumer)."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if request(base + "/health", None, timeout=3)[0] in (200, 503):
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{base}/health did not answer within {timeout_s}s")
