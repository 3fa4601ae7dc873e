"""The framework's ceiling: a bare Faust agent that only takes batches and acks them, built on the worker's own
Faust app (streams/worker/app.py `faust_app`: same broker, consumer settings, fetch wait and batch size).

    python bench/bare_agent.py   (run by bench/e2e.py as a subprocess, with the run's PERSO_* settings)

It consumes the input topics with `stream.take_events(PERSO_BATCH_SIZE, within=PERSO_BATCH_WINDOW_S)`, does
nothing with the records, and counts them in the Redis hash `bench:bare:{app_id}` (fields `records`,
`first_records`, `first_at`, `last_at`: monotonic seconds of the first and the last batch); the bench stops it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.security import redis_async  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.worker.app import faust_app, input_topic  # noqa: E402


def counter_key(app_id: str) -> str:
    return f"bench:bare:{app_id}"


def main() -> int:
    settings = Settings()
    app = faust_app(settings)
    inputs = input_topic(app, settings)
    client = redis_async(settings.redis)
    key = counter_key(settings.app_id)
    taken = 0

    @app.agent(inputs, name="bare")
    async def bare(stream: Any) -> None:
        nonlocal taken
        async for events in stream.take_events(settings.worker.batch_size, within=settings.worker.batch_window_s):
            now = time.monotonic()
            taken += len(events)
            if taken == len(events):  # the first batch: the rate is measured from here, as the engine's is
                await client.hset(key, mapping={"first_at": now, "first_records": taken})  # type: ignore[misc]
            # One round trip per batch (the worker too writes Redis per batch): the count is what the bench reads.
            await client.hset(key, mapping={"records": taken, "last_at": now})  # type: ignore[misc]

    sys.argv = ["bare_agent", "worker", "--loglevel", "warn", "--without-web"]
    app.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
