"""`perso demo`: the embedded stack, a worker process, the synthetic feed and the offers as they arrive.

The CLI prints; this module runs the pieces and reports through two callbacks: `say(line)` for progress and
`show(offer, count)` for each offer seen.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from schemas.experiments import ExperimentConfig
from streams.access import new_token, token_entry
from streams.devstack.feed import run_feed
from streams.devstack.stack import LocalStack
from streams.observability.experiments import experiment_summary
from streams.ops.tail import follow_topic
from streams.security import redacted_url, redis_async
from streams.settings import Settings
from streams.storage.experiments import ExperimentStore

CATCH_UP_S = 5.0
REPORT_EVERY_S = 30.0
DEMO_ARMS = "holdout:20,nbo:40,popular:40"


@dataclass
class DemoOptions:
    customers: int = 500
    rate: float = 200.0
    duration_s: float | None = None
    invalid_share: float = 0.02
    prefix: str = "d-"
    arms: str = DEMO_ARMS


@dataclass
class DemoRun:
    offers: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    experiment: str | None = None


class WorkerExited(RuntimeError):
    pass


def run_demo(settings: Settings, options: DemoOptions, say: Callable[[str], None],
             show: Callable[[dict[str, Any], int], None]) -> DemoRun:
    """Runs until the feed's duration ends (or Ctrl-C); stops the worker; leaves the stack running."""
    LocalStack(settings).up()
    state_dir = settings.stack.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    worker_log = state_dir / "worker.log"
    say(f"stack up (broker {settings.kafka.bootstrap_servers}, redis {redacted_url(settings.redis.redis_url)}); "
        f"starting worker, log in {worker_log}")
    env = dict(os.environ)
    for line in dashboard_access(settings, env):
        say(line)
    with open(worker_log, "ab") as out:
        worker = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], stdout=out,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    started = time.monotonic()
    run = DemoRun()
    run.experiment = asyncio.run(_demo_experiment(settings, options, say))

    async def show_offers() -> None:
        async for offer in follow_topic(settings.kafka, settings.kafka.offers_topic):
            if not run.offers:
                say(f"first offer {time.monotonic() - started:.1f}s after start")
            run.offers.append(offer)
            show(offer, len(run.offers))

    async def watch_worker() -> None:
        while worker.poll() is None:
            await asyncio.sleep(0.5)
        lines = worker_log.read_text(errors="replace").splitlines()[-15:]
        raise WorkerExited(f"the worker exited with code {worker.returncode}; its log ends:\n" + "\n".join(lines))

    async def main() -> None:
        tail = asyncio.create_task(show_offers())
        watch = asyncio.create_task(watch_worker())
        feed = asyncio.create_task(run_feed(settings.kafka, customers=options.customers, rate=options.rate,
                                            duration_s=options.duration_s, invalid_share=options.invalid_share,
                                            prefix=options.prefix, respond=True))
        progress = asyncio.create_task(_report_progress(settings, run, say))
        try:
            done, _ = await asyncio.wait({feed, watch}, return_when=asyncio.FIRST_COMPLETED)
            if watch in done:
                feed.cancel()
                watch.result()
            await asyncio.sleep(CATCH_UP_S)  # let the worker catch up with the last events
        finally:
            for task in (tail, watch, feed, progress):
                task.cancel()
            await asyncio.gather(tail, watch, feed, progress, return_exceptions=True)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except WorkerExited as error:
        run.error = str(error)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    return run


def dashboard_access(settings: Settings, env: dict[str, str]) -> list[str]:
    """The dashboard's address and credentials for the demo's worker. Without PERSO_WEB_TOKENS the demo makes a
    viewer and an operator token for this run only (their hashes go into the worker's environment, `env`); with
    it, your tokens stand."""
    worker = settings.worker
    if not worker.web_enabled:
        return ["dashboard: off (PERSO_WEB_ENABLED=false)"]
    scheme = "https" if worker.web_tls_certfile is not None else "http"
    host = "127.0.0.1" if worker.web_host in ("0.0.0.0", "::") else worker.web_host
    url = f"{scheme}://{host}:{worker.web_port}/dashboard/overview"
    if worker.web_tokens:
        return [f"dashboard: {url} (sign in with one of your PERSO_WEB_TOKENS tokens)"]
    viewer, operator = new_token(), new_token()
    env["PERSO_WEB_TOKENS"] = ",".join([token_entry("viewer", "demo-viewer", viewer),
                                        token_entry("operator", "demo-operator", operator)])
    return [f"dashboard: {url}?token={viewer}",
            f"  demo credentials, for this run only: viewer token {viewer}",
            f"  operator token {operator} (curl -H 'Authorization: Bearer TOKEN' ...; docs/dashboard.md)"]


async def _demo_experiment(settings: Settings, options: DemoOptions, say: Callable[[str], None]) -> str:
    """The experiment the demo's customers are split by: one running already (yours) is kept; an earlier demo's is
    stopped and a new one started."""
    client = redis_async(settings.redis)
    try:
        store = ExperimentStore(client)
        running = await store.running()
        if running is not None and not running.name.startswith("demo-"):
            say(f"experiment {running.name!r} is running: the demo's customers join it")
            return running.name
        if running is not None:
            await store.stop(running.name)
        config = ExperimentConfig.start(f"demo-{options.prefix.strip('-')}-{int(time.time())}", options.arms,
                                        holdout_policy=settings.models.policy)
        await store.start(config)
        say(f"experiment {config.name!r} started: {options.arms} (perso experiments {config.name})")
        return config.name
    finally:
        await client.aclose()


async def _report_progress(settings: Settings, run: DemoRun, say: Callable[[str], None]) -> None:
    """Every REPORT_EVERY_S, one line per arm: customers, conversions and the lift against the holdout."""
    client = redis_async(settings.redis)
    try:
        store = ExperimentStore(client)
        while True:
            await asyncio.sleep(REPORT_EVERY_S)
            config = await store.get(run.experiment or "")
            if config is None:
                continue
            summary = await experiment_summary(store, config, text=False)
            say(summary_line(summary["report"]))
    finally:
        await client.aclose()


def summary_line(report: dict[str, Any]) -> str:
    """One line for the demo's terminal: per arm, converted customers of customers and the lift with its interval
    (for an arm whose offers are not comparable with the holdout's, the lift in buyers).

    >>> summary_line({"name": "x", "reference": "holdout", "arms": [
    ...     {"arm": "holdout", "customers": 40, "converted_customers": 4, "conversion_lift": None},
    ...     {"arm": "nbo", "customers": 80, "converted_customers": 24, "offers_comparable": True,
    ...      "conversion_lift": {"estimate": 0.2, "interval": [0.05, 0.33], "significant": True}}]})
    'experiment x: holdout 4/40 converted; nbo 24/80 converted, lift +20.0 pp [+5.0, +33.0]'
    """
    parts = []
    for arm in report["arms"]:
        text = f"{arm['arm']} {arm['converted_customers']}/{arm['customers']} converted"
        comparable = arm.get("offers_comparable", True)
        lift = arm.get("conversion_lift" if comparable else "buyer_lift")
        if lift and lift.get("estimate") is not None and lift.get("interval"):
            low, high = lift["interval"]
            text += (f", {'lift' if comparable else 'buyers lift'} {lift['estimate'] * 100:+.1f} pp "
                     f"[{low * 100:+.1f}, {high * 100:+.1f}]")
        parts.append(text)
    return f"experiment {report['name']}: " + "; ".join(parts)
