"""A worker on a partition the broker is slow to read: tansu scans a partition's stored batches on every fetch and
answers empty when the scan outlasts the fetch wait: at 10 ms, a worker without the fetch wait governor read none
of these 30,000 one-record batches in 240 s. The worker notices records waiting that do not arrive, raises its
fetch wait, and reads them all (streams/worker/fetch_wait.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams.settings import Settings
from tests.helpers import click, now_iso
from tests.integration.conftest import Worker, isolated, wait_for
from tests.integration.scenario import worker_stat

pytestmark = pytest.mark.integration

BATCHES = 30_000


def produce_one_record_batches(settings: Settings, count: int) -> None:
    """`count` clicks into partition 0 of the clickstream, each its own batch (acknowledged before the next)."""
    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all", linger_ms=0)
        await producer.start()
        try:
            for n in range(count):
                body = click(customer=f"c{n % 200}", item=f"i{n % 50}", at=now_iso())
                await producer.send_and_wait(settings.kafka.clickstream_topic, orjson.dumps(body),
                                             key=f"c{n % 200}".encode(), partition=0)
        finally:
            await producer.stop()

    asyncio.run(send())


def test_a_worker_starved_by_a_slow_broker_raises_its_fetch_wait_and_reads_everything(stack: Settings,
                                                                                      tmp_path: Path) -> None:
    settings = isolated(stack, "fetch-wait", redis_db=12, fetch_max_wait_ms=10)
    produce_one_record_batches(settings, BATCHES)
    worker = Worker(settings, tmp_path / "worker.log")
    worker.start()
    try:
        wait_for(lambda: worker_stat(settings, "accepted") >= BATCHES, 240, f"all {BATCHES} records", worker)
        assert "fetch wait raised to" in worker.log_path.read_text(errors="replace")
        worker.assert_alive()
    finally:
        worker.stop()
