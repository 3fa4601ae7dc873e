"""Replay rate from a file: how fast `perso replay` reads, validates and publishes an event log.

    python bench/replay.py [--events 1000000] [--log /tmp/perso-replay.jsonl.gz]

Runs against PERSO_BROKER_URL (start it with `perso stack up`); publishes into fresh topics each run.
Writes the synthetic log first if it is missing (10,000 customers; days chosen to give about --events),
then measures (1) reading + validating alone, without a broker, and (2) the full replay with broker
acknowledgements. Prints the figures on the last lines and writes bench/results/replay.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schemas.events import EventRejected, parse_event  # noqa: E402
from streams.datasets.synthetic import write_history_log  # noqa: E402
from streams.devstack.stack import create_topics  # noqa: E402
from streams.ops.log_sources import read_file  # noqa: E402
from streams.ops.replay import replay  # noqa: E402
from streams.settings import KafkaSettings  # noqa: E402

CUSTOMERS = 10_000
EVENTS_PER_CUSTOMER_DAY = 2.55  # measured: 869,216 events from 10,000 customers over 33.3 days


def validate_only(path: Path) -> tuple[int, float]:
    started = time.monotonic()
    count = 0
    for record in read_file(path):
        with contextlib.suppress(EventRejected):  # rejects cost the same to find
            parse_event(record.kind or "clickstream", record.value)
        count += 1
    return count, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--log", type=Path, default=Path("/tmp/perso-replay.jsonl.gz"))
    args = parser.parse_args()

    if not args.log.exists():
        days = args.events / (CUSTOMERS * EVENTS_PER_CUSTOMER_DAY)
        began = time.monotonic()
        written = write_history_log(args.log, customers=CUSTOMERS, days=days, seed=3)
        print(f"wrote {written} events to {args.log} in {time.monotonic() - began:.1f}s", flush=True)

    count, seconds = validate_only(args.log)
    print(f"read + validate only: {count} records in {seconds:.1f}s ({count / seconds:,.0f}/s)", flush=True)

    run = uuid.uuid4().hex[:6]
    settings = KafkaSettings(clickstream_topic=f"bench-replay-{run}-clicks",
                             purchases_topic=f"bench-replay-{run}-orders")
    asyncio.run(create_topics(settings))
    summary = asyncio.run(replay(settings, read_file(args.log), progress=False))

    result = {"records": summary.read, "published": summary.published, "rejected": summary.rejected,
              "seconds": round(summary.seconds, 2), "replay_rate": round(summary.rate),
              "validate_only_rate": round(count / seconds), "log": str(args.log),
              "log_bytes": args.log.stat().st_size}
    out = ROOT / "bench" / "results" / "replay.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    print(f"replay: {summary.read} records ({summary.published} published, {summary.rejected} rejected) "
          f"in {summary.seconds:.1f}s = {summary.rate:,.0f} records/s; read + validate alone "
          f"{count / seconds:,.0f}/s")


if __name__ == "__main__":
    main()
