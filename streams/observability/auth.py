"""Access control of the worker's web server: an aiohttp middleware in front of every route, Faust's own included.

- `GET /health` is open (load balancers and `perso status` ask it), and so are the dashboard's login and logout
  pages (they exchange a token for a cookie and back; nothing is read there). `/metrics` is open only when
  PERSO_WEB_METRICS_OPEN is true.
- Everything else needs a token from PERSO_WEB_TOKENS (streams/access.py): `Authorization: Bearer TOKEN`, or for
  reads only, the dashboard's cookie (set by the login form or by `?token=` on a dashboard page). Reads (GET,
  HEAD) need the viewer role; anything else (starting an experiment, forgetting a customer) needs the operator
  role and the header: a cookie is never enough to change anything, so another site cannot make a logged-in
  browser do it (no cross-site request forgery).
- No credentials or wrong ones: 401 (a login form for a browser asking for a page); a valid token without the
  role: 403. With no tokens configured every protected path answers 401: nothing is served without credentials.

The principal who passed is kept on the request (`principal(request)`) for the audit log. Tokens never reach a
log line: the access log is off (Faust's default) and nothing here logs a header.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from streams.access import OPERATOR, VIEWER, Principal, TokenEntry, authenticate

log = logging.getLogger(__name__)

COOKIE = "perso_token"
COOKIE_MAX_AGE_S = 12 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_PATH, LOGOUT_PATH = "/dashboard/login", "/dashboard/logout"
OPEN_PATHS = frozenset({"/health", LOGIN_PATH, LOGOUT_PATH})
_PRINCIPAL = web.RequestKey("perso_principal", Principal)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AccessPolicy:
    """Who may ask what: the configured tokens, and whether /metrics is open."""

    def __init__(self, entries: list[TokenEntry], metrics_open: bool = False, secure_cookie: bool = False) -> None:
        self.entries = entries
        self.metrics_open = metrics_open
        self.secure_cookie = secure_cookie  # served over TLS: the browser sends the cookie over HTTPS only

    def is_open(self, path: str) -> bool:
        return path in OPEN_PATHS or (self.metrics_open and path == "/metrics")

    @staticmethod
    def required_role(method: str) -> str:
        return VIEWER if method in SAFE_METHODS else OPERATOR

    def principal_of(self, request: web.Request) -> Principal | None:
        """Who the request's credentials name: the bearer header, else (reads only) the cookie."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if header:
            return authenticate(self.entries, token.strip()) if scheme.lower() == "bearer" else None
        if request.method in SAFE_METHODS:
            return authenticate(self.entries, request.cookies.get(COOKIE))
        return None

    def middleware(self) -> Any:
        @web.middleware
        async def access_control(request: web.Request, handler: Handler) -> web.StreamResponse:
            if self.is_open(request.path):
                return await handler(request)
            if request.method == "GET" and "token" in request.query and request.path.startswith("/dashboard"):
                return self.exchange(request)
            who = self.principal_of(request)
            if who is None:
                return self.unauthorised(request)
            if not who.may(self.required_role(request.method)):
                return web.json_response({"error": f"forbidden: {request.method} {request.path} needs the "
                                          f"{self.required_role(request.method)} role", "role": who.role},
                                         status=403)
            request[_PRINCIPAL] = who
            return await handler(request)

        return access_control

    def exchange(self, request: web.Request) -> web.StreamResponse:
        """`?token=` on a dashboard page: the cookie set and the same page without the token in its address."""
        token = request.query.get("token", "")
        if authenticate(self.entries, token) is None:
            return self.unauthorised(request)
        rest = {k: v for k, v in request.query.items() if k != "token"}
        response = web.HTTPSeeOther(request.path + (f"?{urlencode(rest)}" if rest else ""))
        self.set_cookie(response, token)
        return response

    def set_cookie(self, response: web.StreamResponse, token: str) -> None:
        response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE_S, httponly=True, samesite="Strict", path="/",
                            secure=self.secure_cookie)

    def unauthorised(self, request: web.Request) -> web.StreamResponse:
        why = ("no credentials are configured on this worker (PERSO_WEB_TOKENS)" if not self.entries
               else "missing or invalid credentials")
        headers = {"WWW-Authenticate": 'Bearer realm="perso"'}
        if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
            from streams.observability.dashboard.pages import login_page

            return web.Response(text=login_page(why, then=request.path_qs), content_type="text/html", status=401,
                                headers=headers)
        return web.json_response({"error": f"unauthorised: {why}"}, status=401, headers=headers)


def principal(request: Any) -> Principal | None:
    """Who passed the access control for this request (None on open paths)."""
    try:
        found = request.get(_PRINCIPAL)
    except (AttributeError, TypeError):
        return None
    return found if isinstance(found, Principal) else None
