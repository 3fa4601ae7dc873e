"""The access-control middleware (streams/observability/auth.py) on requests built in memory: no server."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from streams.access import new_token, parse_tokens, token_entry
from streams.observability.auth import COOKIE, AccessPolicy, principal

VIEWER, OPERATOR = new_token(), new_token()
POLICY = AccessPolicy(parse_tokens(f"{token_entry('viewer', 'vic', VIEWER)},"
                                   f"{token_entry('operator', 'olga', OPERATOR)}"))


async def ok(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    return web.json_response({"who": who.name if who else None})


async def call(policy: AccessPolicy, method: str, path: str, token: str | None = None, cookie: str | None = None,
               **headers: str) -> web.StreamResponse:
    sent: dict[str, Any] = dict(headers)
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    if cookie is not None:
        sent["Cookie"] = f"{COOKIE}={cookie}"
    request = make_mocked_request(method, path, headers=sent)
    result: web.StreamResponse = await policy.middleware()(request, ok)
    return result


async def test_reads_need_a_viewer_and_actions_an_operator() -> None:
    assert (await call(POLICY, "GET", "/profiles/c1")).status == 401
    assert (await call(POLICY, "GET", "/profiles/c1", token="nope")).status == 401
    assert (await call(POLICY, "GET", "/profiles/c1", token=VIEWER)).status == 200
    assert (await call(POLICY, "GET", "/profiles/c1", token=OPERATOR)).status == 200
    assert (await call(POLICY, "POST", "/experiments", token=VIEWER)).status == 403
    assert (await call(POLICY, "DELETE", "/profiles/c1", token=VIEWER)).status == 403
    assert (await call(POLICY, "POST", "/experiments", token=OPERATOR)).status == 200
    assert (await call(POLICY, "GET", "/x", Authorization=f"Basic {VIEWER}")).status == 401


async def test_the_cookie_reads_but_never_acts() -> None:
    assert (await call(POLICY, "GET", "/dashboard/api/overview", cookie=VIEWER)).status == 200
    assert (await call(POLICY, "POST", "/experiments", cookie=OPERATOR)).status == 401
    # A wrong header is not rescued by a good cookie.
    assert (await call(POLICY, "GET", "/metrics", token="nope", cookie=VIEWER)).status == 401


async def test_open_paths_and_the_metrics_setting() -> None:
    for path in ("/health", "/dashboard/login", "/dashboard/logout"):
        assert (await call(POLICY, "GET", path)).status == 200
    assert (await call(POLICY, "GET", "/metrics")).status == 401
    opened = AccessPolicy(POLICY.entries, metrics_open=True)
    assert (await call(opened, "GET", "/metrics")).status == 200
    assert (await call(opened, "GET", "/profiles/c1")).status == 401


async def test_no_tokens_configured_serves_nothing_protected() -> None:
    empty = AccessPolicy([])
    response = await call(empty, "GET", "/experiments", token=VIEWER)
    assert response.status == 401 and b"no credentials are configured" in response.body  # type: ignore[attr-defined]
    assert (await call(empty, "GET", "/health")).status == 200


async def test_a_browser_gets_the_login_form_and_a_token_link_sets_the_cookie() -> None:
    page = await call(POLICY, "GET", "/dashboard/models", Accept="text/html")
    assert page.status == 401 and b"/dashboard/login" in page.body  # type: ignore[attr-defined]
    exchanged = await call(POLICY, "GET", f"/dashboard/models?token={VIEWER}&x=1")
    assert exchanged.status == 303 and exchanged.headers["Location"] == "/dashboard/models?x=1"
    cookie = exchanged.cookies[COOKIE]
    assert cookie.value == VIEWER and cookie["httponly"] and cookie["samesite"] == "Strict"
    assert (await call(POLICY, "GET", "/dashboard/models?token=wrong")).status == 401
    secure = AccessPolicy(POLICY.entries, secure_cookie=True)
    assert (await call(secure, "GET", f"/dashboard/models?token={VIEWER}")).cookies[COOKIE]["secure"]


async def test_the_principal_is_kept_for_the_audit_log() -> None:
    response = await call(POLICY, "GET", "/profiles/c1", token=OPERATOR)
    assert b'"olga"' in response.body  # type: ignore[attr-defined]
