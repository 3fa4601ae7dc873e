"""Access control on a real worker (real broker, Redis and worker process): every route the web server has,
Faust's own included, answers 401 without credentials or with wrong ones; a viewer gets 403 on operators'
actions; an operator starts and stops an experiment and forgets a customer over HTTP; reads of a customer are
audit-logged; tokens never reach the log; TLS serves HTTPS; with no tokens configured nothing is served."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from streams.settings import Settings
from streams.storage.keys import audit_key
from streams.worker.app import create_app
from tests.helpers import click, now_iso
from tests.integration.conftest import Worker, free_port, isolated, produce, profile, wait_for
from tests.integration.scenario import start_ready
from tests.integration.web import OPERATOR_TOKEN, VIEWER_TOKEN, WEB_TOKENS, request, wait_until_serving

OPEN = {"/health", "/dashboard/login", "/dashboard/logout"}


def routes(settings: Settings) -> list[tuple[str, str]]:
    """(method, path) of every route the worker's web server registers, path parameters filled with "x"."""
    app = create_app(settings)
    app.web.init_server()
    found = set()
    for route in app.web.web_app.router.routes():  # type: ignore[attr-defined]
        if route.method == "HEAD":
            continue
        found.add((route.method, re.sub(r"\{[^}]+\}", "x", route.resource.canonical)))
    return sorted(found)


@pytest.fixture(scope="module")
def secured(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Any:
    port = free_port()
    # Experiments are per Redis database: the one started below is stopped before the test ends.
    settings = isolated(stack, "web-access", redis_db=9, web_enabled=True, web_port=port, web_tokens=WEB_TOKENS)
    tmp = tmp_path_factory.mktemp("web-access")
    worker = start_ready(settings, tmp / "worker.log")
    try:
        wait_until_serving(f"http://127.0.0.1:{port}")
        yield settings, worker, f"http://127.0.0.1:{port}"
    finally:
        worker.stop()


def test_every_protected_route_refuses_missing_or_wrong_credentials(secured: Any) -> None:
    settings, worker, base = secured
    found = routes(settings)
    paths = {path for _, path in found}
    # The list is the server's own: it holds the dashboard, the reports, the profiles and Faust's built-ins.
    assert {"/metrics", "/profiles/x", "/experiments", "/dashboard/api/customers/x", "/router/", "/"} <= paths
    protected = [(method, path) for method, path in found if path not in OPEN]
    assert len(protected) > 20, protected
    wrong = [None, "wrong-token", VIEWER_TOKEN[:-1], "Basic " + VIEWER_TOKEN]
    for method, path in protected:
        for token in wrong:
            headers = {"Authorization": token} if token and token.startswith("Basic") else None
            status, body, answer = request(base + path, None if headers else token, method=method,
                                           headers=headers or {"Cookie": "perso_token=forged"})
            assert status == 401, (method, path, token, status, body[:200])
            assert answer.get("WWW-Authenticate", "").startswith("Bearer"), (method, path)
    assert request(base + "/health", token=None)[0] == 200
    # A browser without credentials asking for a page gets the login form, still with a 401.
    status, body, _ = request(base + "/dashboard/overview", token=None, headers={"Accept": "text/html"})
    assert status == 401 and b'action="/dashboard/login"' in body
    # Valid credentials pass the access control on every read-only route (what a made-up name gets then is the
    # route's own answer: 404, or a 500 from Faust's table router for a table that does not exist).
    for method, path in protected:
        if method == "GET":
            assert request(base + path, VIEWER_TOKEN)[0] not in (401, 403), path
    worker.assert_alive()


def test_a_viewer_cannot_act_and_an_operator_can(secured: Any) -> None:
    settings, worker, base = secured
    arms = {"name": "http-exp", "arms": "holdout:50,nbo:50"}
    status, body, _ = request(base + "/experiments", VIEWER_TOKEN, method="POST", body=arms)
    assert status == 403 and b"operator" in body, body
    assert request(base + "/experiments/http-exp/stop", VIEWER_TOKEN, method="POST")[0] == 403
    assert request(base + "/profiles/someone", VIEWER_TOKEN, method="DELETE")[0] == 403
    # The operator's cookie alone changes nothing (another site could make a browser send it): the header is needed.
    status, _, _ = request(base + "/experiments", None, method="POST", body=arms,
                           headers={"Cookie": f"perso_token={OPERATOR_TOKEN}"})
    assert status == 401

    status, body, _ = request(base + "/experiments", OPERATOR_TOKEN, method="POST", body=arms)
    assert status == 201, body
    assert json.loads(body)["status"] == "running"
    status, body, _ = request(base + "/experiments", OPERATOR_TOKEN, method="POST", body={"name": "y", "arms": "x"})
    assert status == 400, body
    # An arm's rules are checked as `perso experiment start --arm-rules` checks them, before anything is stored.
    status, body, _ = request(base + "/experiments", OPERATOR_TOKEN, method="POST",
                              body={"name": "y", "arms": "holdout:50,nbo:50", "rules": {"nbo": "exclude: item.colour"}})
    assert status == 400 and b"unknown field item.colour" in body, body
    status, body, _ = request(base + "/experiments", OPERATOR_TOKEN, method="POST",
                              body={"name": "y", "arms": "holdout:50,nbo:50", "rules": "exclude: item.hidden"})
    assert status == 400 and b"by arm name" in body, body
    status, body, _ = request(base + "/experiments/http-exp/stop", OPERATOR_TOKEN, method="POST")
    assert status == 200 and json.loads(body)["status"] == "stopped", body

    produce(settings, [("clickstream", "erin", orjson.dumps(click(customer="erin", at=now_iso())))])
    wait_for(lambda: profile(settings, "erin"), 30, "erin's profile", worker)
    assert request(base + "/profiles/erin", VIEWER_TOKEN)[0] == 200
    status, body, _ = request(base + "/profiles/erin", OPERATOR_TOKEN, method="DELETE")
    assert status == 200 and json.loads(body)["keys_deleted"] == 3, body
    assert not profile(settings, "erin")
    assert request(base + "/profiles/erin", VIEWER_TOKEN)[0] == 404

    # The audit trail: who (name and role), what, which customer, in Redis and in the log; never a token.
    client = redis.Redis.from_url(settings.redis.redis_url, decode_responses=True)
    try:
        entries = [fields for _, fields in client.xrange(audit_key(settings.app_id))]
    finally:
        client.close()
    reads = [e for e in entries if e["action"] == "read profile" and e["customer"] == "erin"]
    assert reads and reads[0]["who"] == "test-viewer" and reads[0]["role"] == "viewer" and float(reads[0]["at"]) > 0
    assert any(e["action"] == "forget customer" and e["who"] == "test-operator" for e in entries)
    assert any(e["action"] == "start experiment" for e in entries)
    log = worker.log_path.read_text()
    assert "audit: test-viewer (viewer) read profile customer=erin" in log
    assert VIEWER_TOKEN not in log and OPERATOR_TOKEN not in log


def test_the_browser_exchanges_a_token_for_a_cookie(secured: Any) -> None:
    _, _, base = secured
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)

    def post_login(token: str) -> tuple[int, dict[str, str]]:
        data = f"token={token}&next=/dashboard/models".encode()
        req = urllib.request.Request(base + "/dashboard/login", data=data, method="POST")
        try:
            with opener.open(req, timeout=5) as response:
                return response.status, dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers)

    status, headers = post_login(VIEWER_TOKEN)
    assert status == 303 and headers["Location"] == "/dashboard/models", (status, headers)
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie, cookie
    assert post_login("wrong")[0] == 401
    # `?token=` on a dashboard page: the cookie, and the same page without the token in its address.
    try:
        opener.open(base + f"/dashboard/segments?token={VIEWER_TOKEN}", timeout=5)
        raise AssertionError("expected a redirect")
    except urllib.error.HTTPError as error:
        assert error.code == 303 and error.headers["Location"] == "/dashboard/segments"
        assert "perso_token=" in error.headers["Set-Cookie"]
    status, _, _ = request(base + "/dashboard/api/whoami", None, headers={"Cookie": f"perso_token={VIEWER_TOKEN}"})
    assert status == 200


def test_tls_and_the_safe_default_without_tokens(stack: Settings, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    port = free_port()
    settings = isolated(stack, "web-tls", redis_db=10, web_enabled=True, web_port=port, web_tls_certfile=cert,
                        web_tls_keyfile=key)
    worker = Worker(settings, tmp_path / "worker.log")
    worker.start()
    context = ssl.create_default_context(cafile=str(cert))
    try:
        base = f"https://127.0.0.1:{port}"
        wait_for(lambda: _status(base + "/health", context) == 200, 60, "the worker's HTTPS /health", worker)
        # No tokens configured: nothing but /health is served, whatever the credentials.
        status, body, _ = request(base + "/profiles/x", VIEWER_TOKEN, context=context)
        assert status == 401 and b"no credentials are configured" in body
        assert request(base + "/dashboard/api/overview", None, context=context)[0] == 401
        assert "no web tokens configured" in worker.log_path.read_text()
        with pytest.raises(OSError):  # plain HTTP is not spoken on the TLS port
            request(f"http://127.0.0.1:{port}/health", None, timeout=3)
    finally:
        worker.stop()


def _status(url: str, context: ssl.SSLContext) -> int:
    try:
        return request(url, None, context=context, timeout=3)[0]
    except OSError:
        return 0
