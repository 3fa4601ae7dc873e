"""Two workers in one consumer group share the partitions, and every event is reflected exactly once."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import orjson
import redis

from streams.devstack.stack import create_topics
from streams.settings import Settings
from tests.helpers import click, now_iso
from tests.integration.conftest import Worker, changed, produce, wait_for
from tests.integration.scenario import worker_stats


def test_two_workers_split_the_partitions_and_count_each_event_once(stack: Settings, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:6]
    settings = changed(stack, app_id=f"pair-{run}", clickstream_topic=f"pair-{run}-clicks",
                       purchases_topic=f"pair-{run}-orders", offers_topic=f"pair-{run}-offers",
                       dead_letter_topic=f"pair-{run}-dead", redis_url=stack.redis.redis_url.rsplit("/", 1)[0] + "/4")
    asyncio.run(create_topics(settings.kafka))
    client = redis.Redis.from_url(settings.redis.redis_url, decode_responses=True)
    workers = [Worker(settings, tmp_path / f"worker{n}.log") for n in range(2)]
    for worker in workers:
        worker.start()
    try:
        customers = [f"p{n:03d}" for n in range(60)]
        records = [("clickstream", c, orjson.dumps(click(customer=c, item=f"i{k}", at=now_iso(5 - k))))
                   for k in range(5) for c in customers]
        produce(settings, records)

        def reflected() -> int:
            return sum(int(client.hget(f"profile:{c}", "events") or 0) for c in customers)

        wait_for(lambda: reflected() == len(records), 120, f"{len(records)} events in profiles", workers[0])

        def records_per_worker() -> list[int]:
            return [int(float(fields.get("records", 0))) for _, fields in worker_stats(settings)]

        # Both joined the group and processed a share; together exactly what was sent.
        counts = wait_for(lambda: (c := records_per_worker()) and sum(c) == len(records) and c, 10,
                          "both workers' counters")
        assert len(counts) == 2 and all(count > 0 for count in counts), counts
        for worker in workers:
            worker.assert_alive()
    finally:
        for worker in workers:
            worker.stop()
        client.close()
