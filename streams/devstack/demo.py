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

from streams.devstack.feed import run_feed
from streams.devstack.stack import LocalStack
from streams.ops.tail import follow_topic
from streams.security import redacted_url
from streams.settings import Settings

CATCH_UP_S = 5.0


@dataclass
class DemoOptions:
    customers: int = 500
    rate: float = 200.0
    duration_s: float | None = None
    invalid_share: float = 0.02
    prefix: str = "d-"


@dataclass
class DemoRun:
    offers: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


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
    with open(worker_log, "ab") as out:
        worker = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], stdout=out,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=dict(os.environ))
    started = time.monotonic()
    run = DemoRun()

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
                                            prefix=options.prefix))
        try:
            done, _ = await asyncio.wait({feed, watch}, return_when=asyncio.FIRST_COMPLETED)
            if watch in done:
                feed.cancel()
                watch.result()
            await asyncio.sleep(CATCH_UP_S)  # let the worker catch up with the last events
        finally:
            for task in (tail, watch, feed):
                task.cancel()
            await asyncio.gather(tail, watch, feed, return_exceptions=True)

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
