"""The demo's dashboard credentials (streams/devstack/demo.py): made per run unless tokens are configured."""

from __future__ import annotations

from streams.access import authenticate, parse_tokens, token_entry
from streams.devstack.demo import dashboard_access
from streams.settings import Settings, WorkerSettings


def test_the_demo_makes_a_viewer_and_an_operator_token_and_prints_the_address() -> None:
    env: dict[str, str] = {}
    lines = dashboard_access(Settings(worker=WorkerSettings(web_port=6099)), env)
    assert lines[0].startswith("dashboard: http://127.0.0.1:6099/dashboard/overview?token=")
    viewer = lines[0].rsplit("=", 1)[1]
    operator = lines[2].split()[2]
    entries = parse_tokens(env["PERSO_WEB_TOKENS"])  # hashes only: the tokens are not in the environment
    assert viewer not in env["PERSO_WEB_TOKENS"] and operator not in env["PERSO_WEB_TOKENS"]
    assert authenticate(entries, viewer).role == "viewer"  # type: ignore[union-attr]
    assert authenticate(entries, operator).role == "operator"  # type: ignore[union-attr]


def test_configured_tokens_stand() -> None:
    env: dict[str, str] = {}
    settings = Settings(worker=WorkerSettings(web_tokens=token_entry("viewer", "me", "t")))
    assert "your PERSO_WEB_TOKENS" in dashboard_access(settings, env)[0] and not env
