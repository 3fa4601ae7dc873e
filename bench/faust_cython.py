"""Faust's opt-in `cython_optimizations` on and off, alternated on one preloaded backlog.

    python bench/faust_cython.py [--events 100000] [--rounds 4] [--engine]

Runs against PERSO_BROKER_URL / PERSO_REDIS_URL (`perso stack up`). Preloads --events events once, then drains
them --rounds times with the setting off and on in turn (off, on, on, off, ...: a drift of the machine's speed
falls on both), each drain in a fresh consumer group: with the bare Faust agent (bench/bare_agent.py), or with
--engine the whole worker (every model learning). Prints each drain and the medians; writes
bench/results/faust_cython.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from e2e import bare_agent_rate, delete_customers, drain  # noqa: E402

from streams.devstack.feed import run_feed  # noqa: E402
from streams.devstack.stack import create_topics  # noqa: E402
from streams.security import redis_sync  # noqa: E402
from streams.settings import Settings  # noqa: E402


def engine_rate(env: dict[str, str], events: int, label: str) -> float:
    """Events/s of one whole worker draining the backlog in its own consumer group, after its first batch."""
    import redis

    app_id = f"{env['PERSO_APP_ID']}-{label}"
    worker_env = {**env, "PERSO_APP_ID": app_id}
    client: redis.Redis = redis_sync(Settings().redis)
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker", "--loglevel", "warn"], cwd=ROOT,
                            env=worker_env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        return drain(client, app_id, proc, events).rate(events)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=4, help="drains with each setting")
    parser.add_argument("--engine", action="store_true", help="drain with the whole worker, not the bare agent")
    args = parser.parse_args()

    run = uuid.uuid4().hex[:6]
    env = {**os.environ, "PERSO_APP_ID": f"cy-{run}", "PERSO_CLICKSTREAM_TOPIC": f"cy-{run}-clickstream",
           "PERSO_PURCHASES_TOPIC": f"cy-{run}-purchases", "PERSO_FEEDBACK_TOPIC": f"cy-{run}-feedback",
           "PERSO_OFFERS_TOPIC": f"cy-{run}-offers", "PERSO_DEAD_LETTER_TOPIC": f"cy-{run}-deadletter",
           "PERSO_WEB_ENABLED": "false"}
    os.environ.update(env)
    settings = Settings()
    client = redis_sync(settings.redis)
    asyncio.run(create_topics(settings.kafka))
    feed = asyncio.run(run_feed(settings.kafka, customers=10_000, rate=1e9, max_events=args.events, seed=3,
                                prefix=f"cy{run}-"))
    rates: dict[bool, list[float]] = {False: [], True: []}
    order = [bool(i % 4 in (1, 2)) for i in range(2 * args.rounds)]  # off, on, on, off, ...
    try:
        for i, on in enumerate(order):
            drain_env = {**env, "PERSO_CYTHON_OPTIMIZATIONS": str(on).lower()}
            label = f"{'on' if on else 'off'}{i}"
            rate = (engine_rate(drain_env, feed.sent, label) if args.engine
                    else bare_agent_rate(drain_env, client, feed.sent, label))
            rates[on].append(rate)
            print(f"drain {i + 1}/{len(order)}, cython_optimizations={on}: {rate:.0f} events/s", flush=True)
            if args.engine:  # the next drain's customers must start empty as this one's did
                delete_customers(client, [f"cy{run}-"])
    finally:
        delete_customers(client, [f"cy{run}-"])
    off, on_ = statistics.median(rates[False]), statistics.median(rates[True])
    result = {"events": feed.sent, "what": "engine" if args.engine else "bare Faust agent",
              "off_events_per_s": [round(r) for r in rates[False]], "on_events_per_s": [round(r) for r in rates[True]],
              "median_off": round(off), "median_on": round(on_), "on_over_off": round(on_ / off, 3)}
    out = ROOT / "bench" / "results" / "faust_cython.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    print(f"{result['what']}: median {off:.0f} events/s off, {on_:.0f} on ({on_ / off - 1:+.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
