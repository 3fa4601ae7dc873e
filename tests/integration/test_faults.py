"""Faults on the real processes: Redis going away and coming back, a worker of a two-worker group dying.

Each test reports events sent, events reflected in profiles and lost (`pytest -m faults` prints the table).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from streams.devstack.stack import LocalStack
from streams.settings import Settings
from tests.integration.conftest import RedisServer, Worker, changed, free_port, isolated, report_fault, wait_for
from tests.integration.scenario import (
    build_log,
    combined,
    finish_after_fault,
    matches,
    reflected,
    replay,
    replay_in_background,
    start_ready,
    started_with_profiles,
    total_events,
    wait_until_profiles_match,
    worker_stat,
)

OUTAGE_S = 8.0


def health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        assert json.loads(error.read())["redis"] == "unreachable"
        return int(error.code)


@pytest.mark.faults
def test_redis_outage_holds_the_stream_and_loses_nothing(stack: Settings, tmp_path: Path) -> None:
    server = RedisServer(tmp_path, durable=True)
    server.start()
    port = free_port()
    settings = isolated(stack, "redis-down", redis_db=0, redis_url=server.url, web_enabled=True, web_port=port,
                        redis_retry_max_s=1.0)
    during = tmp_path / "during.jsonl"
    worker, expected_before = started_with_profiles(settings, tmp_path / "before.jsonl", tmp_path, 20, 10)
    try:
        server.stop()
        expected_during = build_log(during, customers=20, per_customer=20)  # the same customers, more events
        expected = combined(expected_before, expected_during)
        sent = total_events(expected)
        replay(settings, during, tmp_path)  # the broker is fine: the events wait in Kafka
        wait_for(lambda: health(port) == 503, 30, "the worker to report Redis unreachable", worker)
        time.sleep(OUTAGE_S)
        worker.assert_alive()
        assert "failed (redis_unreachable" in worker.log_path.read_text()

        server.start()  # same port, its append-only file restores every key
        wait_until_profiles_match(settings, expected, worker)
        wait_for(lambda: health(port) == 200, 30, "the worker to report Redis back", worker)
        assert "batch completed after" in worker.log_path.read_text()
        report_fault(f"Redis down {OUTAGE_S:.0f}+ s, then restarted", sent, reflected(settings, expected))
        assert matches(settings, expected)
    finally:
        worker.stop()
        server.stop()


@pytest.mark.faults
def test_one_of_two_workers_dies_and_the_other_takes_over(stack: Settings, tmp_path: Path) -> None:
    settings = isolated(stack, "survivor", redis_db=8)
    log = tmp_path / "events.jsonl"
    expected = build_log(log, customers=60, per_customer=50)
    sent = total_events(expected)
    first = start_ready(settings, tmp_path / "worker1.log")
    second = Worker(settings, tmp_path / "worker2.log")
    second.start()

    def both_working() -> bool:
        return all(worker_stat(settings, "assigned_partitions", pid=w.pid) > 0 for w in (first, second))
    wait_for(both_working, 60, "both workers to own partitions", second)
    feeder = replay_in_background(settings, log, tmp_path, rate=500)
    try:
        wait_for(lambda: worker_stat(settings, "accepted", pid=second.pid) > 200, 60, "the second worker to work",
                 second)
        second.kill()
        assert worker_stat(settings, "accepted") < sent, "the replay finished before the worker died"
        finish_after_fault(settings, feeder, expected, first, "one of two workers SIGKILLed mid-stream")
        every = len(settings.kafka.input_topics) * settings.kafka.partitions
        wait_for(lambda: worker_stat(settings, "assigned_partitions", pid=first.pid) == every,
                 30, "the survivor to own every partition", first)
    finally:
        feeder.kill()
        first.stop()
        second.stop()


@pytest.mark.faults
def test_broker_restart_the_worker_reconnects_and_goes_on(stack: Settings, tmp_path: Path) -> None:
    # A broker of this test's own: restarting the session's broker would pull it from under other tests.
    settings = changed(stack, broker_url=f"kafka://127.0.0.1:{free_port()}", state_dir=tmp_path,
                       app_id="restart", redis_url=stack.redis.redis_url.rsplit("/", 1)[0] + "/10")
    broker = LocalStack(settings)
    broker.up()
    after = tmp_path / "after.jsonl"
    worker, expected_before = started_with_profiles(settings, tmp_path / "before.jsonl", tmp_path, 20, 10)
    try:
        broker.down()  # tansu keeps topics in memory: the new broker starts empty and `up` recreates them
        time.sleep(3)
        worker.assert_alive()
        broker.up()
        expected_after = build_log(after, customers=20, per_customer=10)
        replay(settings, after, tmp_path)
        expected = combined(expected_before, expected_after)
        wait_until_profiles_match(settings, expected, worker)
        sent = total_events(expected)
        report_fault("broker restarted (new in-memory tansu, topics recreated)", sent, reflected(settings, expected))
        assert matches(settings, expected)
    finally:
        worker.stop()
        broker.down()
