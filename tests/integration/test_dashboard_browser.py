"""The dashboard in a real headless Chromium (Debian's, driven by Playwright), against a real worker fed with
synthetic customers who answer their offers: every page loads with no console errors, its charts render with
data, the customer search finds a profile. A screenshot of every page goes to $PERSO_ARTIFACTS (default
tests/artifacts/) on every run.

Chromium missing is a failure, never a skip: `./dev setup` installs it (apt-get chromium chromium-driver).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from streams.settings import Settings
from tests.integration.conftest import ROOT, free_port, isolated, settings_env, wait_for
from tests.integration.scenario import start_ready, worker_stat
from tests.integration.web import OPERATOR_TOKEN, VIEWER_TOKEN, WEB_TOKENS, get_json, request, wait_until_serving

CHROMIUM = os.environ.get("PERSO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = ("overview", "segments", "experiments", "models")
FEED_S = 50


def artifacts_dir() -> Path:
    path = Path(os.environ.get("PERSO_ARTIFACTS", ROOT / "tests" / "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def fed_worker(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str]]:
    """A worker with a running experiment, fed for FEED_S seconds; horizons of seconds so that labels settle
    (and the reliability diagrams fill) within the test."""
    port = free_port()
    settings = isolated(stack, "dashboard", redis_db=1, web_enabled=True, web_port=port, web_tokens=WEB_TOKENS,
                        web_history_interval_s=1.0, propensity_horizon_days=15 / 86_400,
                        churn_horizon_days=20 / 86_400)
    tmp = tmp_path_factory.mktemp("dashboard")
    worker = start_ready(settings, tmp / "worker.log")
    base = f"http://127.0.0.1:{port}"
    feed = None
    try:
        wait_until_serving(base)
        status, body, _ = request(base + "/experiments", OPERATOR_TOKEN, method="POST",
                                  body={"name": "browser", "arms": "holdout:20,nbo:40,popular:40"})
        assert status == 201, body
        feed = subprocess.Popen([sys.executable, "-m", "streams.cli", "feed", "--rate", "150", "--customers", "200",
                                 "--duration", str(FEED_S), "--respond", "--invalid-share", "0.03"],
                                cwd=ROOT, env=settings_env(settings), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

        def ready() -> bool:
            models = get_json(base + "/dashboard/api/models")
            return (worker_stat(settings, "offers") > 0 and worker_stat(settings, "dead_letters") > 0
                    and all(q["reliability"] for q in models["quality"].values())
                    and len(get_json(base + "/dashboard/api/overview")["history"]) >= 5)

        wait_for(ready, FEED_S + 40, "events, offers, dead letters and settled labels", worker)
        yield settings, base
    finally:
        if feed is not None:
            feed.terminate()
            feed.wait(timeout=30)
        # Experiments are per Redis database: leave none running for whichever test uses it next.
        request(base + "/experiments/browser/stop", OPERATOR_TOKEN, method="POST")
        worker.stop()


@pytest.fixture(scope="module")
def browser_page() -> Iterator[Page]:
    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), \
        f"{CHROMIUM} is missing: the browser tests need Debian's chromium (./dev setup installs it)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


def watch_console(page: Page) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    return problems


def sign_in(page: Page, base: str) -> None:
    page.goto(base + "/dashboard/login")
    page.fill("#token", VIEWER_TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/dashboard/overview")


def chart_points(page: Page) -> dict[str, int]:
    points: dict[str, Any] = page.eval_on_selector_all(
        "canvas", "cs => Object.fromEntries(cs.map(c => [c.id, Number(c.dataset.points || 0)]))")
    return {name: int(n) for name, n in points.items()}


def wait_for_charts(page: Page, what: str) -> dict[str, int]:
    """Every chart on the page drawn with at least one point (the page polls every 3 s)."""
    page.wait_for_function("() => document.body.dataset.updated")
    found: dict[str, int] = {}

    def drawn() -> bool:
        found.update(chart_points(page))
        return bool(found) and all(n > 0 for n in found.values())

    wait_for(drawn, 20, f"every chart of {what} to show data (points per chart: {found})")
    return found


def test_every_page_loads_without_errors_and_its_charts_show_live_data(fed_worker: tuple[Settings, str],
                                                                       browser_page: Page) -> None:
    _, base = fed_worker
    page = browser_page
    sign_in(page, base)
    problems = watch_console(page)
    shots = artifacts_dir()
    for name in PAGES:
        page.goto(f"{base}/dashboard/{name}")
        points = wait_for_charts(page, name)
        assert points, f"{name} has no charts"
        page.wait_for_timeout(300)  # let the last redraw paint before the picture
        page.screenshot(path=str(shots / f"dashboard-{name}.png"), full_page=True)
        assert page.locator("#whoami").inner_text().startswith("test-viewer"), name
    assert not problems, problems
    # The pages show what the worker reports: the experiment's arms, the segments' labels.
    page.goto(f"{base}/dashboard/experiments")
    page.wait_for_function("() => document.querySelectorAll('#arms tbody tr').length === 3")
    assert "holdout" in page.locator("#arms").inner_text()
    # popular's lift against nbo's, paired on the holdout's customers (its ghost offers of both policies).
    page.wait_for_function("() => document.querySelectorAll('#comparisons tbody tr').length === 1")
    compared = page.locator("#comparisons").inner_text()
    assert "popular vs nbo" in compared and " pp [" in compared, compared
    page.goto(f"{base}/dashboard/segments")
    page.wait_for_function("() => document.querySelectorAll('#seg-table tbody tr').length > 0")
    assert "events" in page.locator("#seg-table").inner_text()
    assert not problems, problems


def test_the_customer_search_finds_a_profile(fed_worker: tuple[Settings, str], browser_page: Page) -> None:
    _, base = fed_worker
    page = browser_page
    sign_in(page, base)
    problems = watch_console(page)
    page.goto(f"{base}/dashboard/customer")
    page.fill("#search-input", "c00001")
    page.wait_for_function("() => Number(document.getElementById('search').dataset.hits || 0) > 0")
    first = page.eval_on_selector("#search-hits option", "o => o.value")
    assert first.startswith("c00001"), first
    page.fill("#search-input", first)
    page.press("#search-input", "Enter")
    page.wait_for_url(f"{base}/dashboard/customer?id={first}")
    page.wait_for_function(f"() => (document.getElementById('customer-title') || {{}}).textContent === "
                           f"'Customer {first}'")
    wait_for_charts(page, "the customer page")
    assert "propensity" in page.locator("#scores").inner_text()
    page.screenshot(path=str(artifacts_dir() / "dashboard-customer.png"), full_page=True)
    assert not problems, problems
