"""Faults inside a batch, on the real broker, a real redis-server and a real worker process: Redis out of
memory, Redis read-only during a failover, its scripts flushed, permissions revoked (a failure that cannot
heal: the worker must exit without committing), and offers the producer refuses as too large.

Each reports events sent, reflected in profiles and lost, in the same table as the other faults.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from streams.settings import Settings
from tests.helpers import click, now_iso
from tests.integration.conftest import (
    ROOT,
    RedisServer,
    free_port,
    isolated,
    read_topic,
    report_fault,
    settings_env,
    wait_for,
)
from tests.integration.scenario import (
    build_log,
    combined,
    matches,
    reflected,
    replay,
    replay_in_background,
    start_ready,
    started_with_profiles,
    total_events,
    wait_until_profiles_match,
)
from tests.integration.web import WEB_TOKENS, request


def health(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read())


def perso(settings: Settings, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], cwd=ROOT, env=settings_env(settings),
                          capture_output=True, text=True, timeout=timeout)


def feed(settings: Settings, rate: int, customers: int, events: int, prefix: str) -> int:
    """`perso feed` as an operator runs it; returns the valid events it sent (sent minus deliberately invalid)."""
    done = perso(settings, "feed", "--rate", str(rate), "--customers", str(customers), "--events", str(events),
                 "--prefix", prefix, timeout=120)
    assert done.returncode == 0, done.stderr
    sent, invalid = (int(n) for n in re.findall(r"sent (\d+) events.*?(\d+) invalid", done.stdout)[0])
    return sent - invalid


def events_in_profiles(client: redis.Redis, prefix: str) -> int:
    return sum(int(client.hget(key, "events") or 0) for key in client.scan_iter(f"profile:{prefix}*", count=1000))


@pytest.mark.faults
def test_redis_out_of_memory_loses_nothing_and_says_so(stack: Settings, tmp_path: Path) -> None:
    """The reported incident, scaled to CI: noeviction Redis fills up under two feeds, then gets room."""
    server = RedisServer(tmp_path, extra=["--maxmemory-policy", "noeviction"])
    server.start()
    port = free_port()
    settings = isolated(stack, "redis-oom", redis_db=0, redis_url=server.url, web_enabled=True, web_port=port,
                        web_tokens=WEB_TOKENS,
                        redis_retry_max_s=1.0)
    worker = start_ready(settings, tmp_path / "worker.log")
    client = server.client()
    # Room for a few hundred customers (~2.5 KB each): the feeds below bring thousands.
    client.config_set("maxmemory", int(client.info("memory")["used_memory"]) + 1_500_000)
    try:
        valid = feed(settings, rate=2000, customers=2000, events=3000, prefix="first-")
        valid += feed(settings, rate=3000, customers=5000, events=4000, prefix="second-")

        _, body = wait_for(lambda: (h := health(port))[0] == 503 and h, 60, "/health to report degraded", worker)
        assert body["status"] == "degraded" and body["cause"] == "redis_out_of_memory", body
        assert body["stage"] == "save" and body["events_waiting"] > 0 and body["attempts"] >= 1
        status = perso(settings, "status", "--json")
        report = json.loads(status.stdout)
        assert status.returncode == 1 and not report["healthy"], status.stdout
        assert report["total_lag"] > 0, "lag must not read 0 while events wait"
        assert "out of memory" in report["redis"]["problem"]
        metrics = request(f"http://127.0.0.1:{port}/metrics")[1].decode()
        assert re.search(r'perso_batch_failures_total\{cause="redis_out_of_memory"\} [1-9]', metrics), metrics
        assert "perso_healthy 0.0" in metrics
        worker.assert_alive()

        client.config_set("maxmemory", "200mb")
        wait_for(lambda: events_in_profiles(client, "first-") + events_in_profiles(client, "second-") >= valid,
                 120, "every valid event in the profiles", worker)
        wait_for(lambda: health(port)[0] == 200, 30, "/health to recover", worker)
        wait_for(lambda: json.loads(perso(settings, "status", "--json").stdout)["total_lag"] == 0, 30,
                 "the backlog to be committed", worker)
        applied = events_in_profiles(client, "first-") + events_in_profiles(client, "second-")
        log = worker.log_path.read_text()
        assert "Crashed" not in log and "Restarting dead" not in log, "the agent must not restart in-process"
        report_fault("Redis out of memory (noeviction), then given room", valid, applied)
        assert applied == valid
    finally:
        worker.stop()
        server.stop()


@pytest.mark.faults
def test_redis_read_only_during_a_failover_and_back(stack: Settings, tmp_path: Path) -> None:
    primary = RedisServer(tmp_path)
    primary.start()
    (tmp_path / "replica").mkdir()
    replica = RedisServer(tmp_path / "replica")
    replica.start()
    port = free_port()
    settings = isolated(stack, "read-only", redis_db=0, redis_url=primary.url, web_enabled=True, web_port=port,
                        redis_retry_max_s=1.0)
    during = tmp_path / "during.jsonl"
    worker, expected_before = started_with_profiles(settings, tmp_path / "before.jsonl", tmp_path, 20, 10)
    old, new = primary.client(), replica.client()
    try:
        new.replicaof("127.0.0.1", primary.port)
        wait_for(lambda: new.info("replication").get("master_link_status") == "up", 30, "the replica to sync")
        new.replicaof("NO", "ONE")  # the failover: the replica is promoted ...
        old.replicaof("127.0.0.1", replica.port)  # ... and the old primary, which the worker uses, now follows it
        expected = combined(expected_before, build_log(during, customers=20, per_customer=15))
        replay(settings, during, tmp_path)
        _, body = wait_for(lambda: (h := health(port))[0] == 503 and h, 30, "/health to report degraded", worker)
        assert body["cause"] in ("redis_read_only", "redis_loading"), body
        time.sleep(3)
        worker.assert_alive()
        assert reflected(settings, expected) < total_events(expected)
        # An operator restarts the worker meanwhile: SIGTERM while the batch is retried must not commit it.
        assert worker.process is not None
        worker.process.terminate()
        assert worker.wait_exit(20) == 75, worker.log_tail()
        assert "its offsets are not committed" in worker.log_path.read_text()

        old.replicaof("NO", "ONE")  # promoted back
        worker = start_ready(settings, tmp_path / "worker2.log")
        wait_until_profiles_match(settings, expected, worker)
        report_fault("Redis read-only (failover), worker restarted, promoted", total_events(expected),
                     reflected(settings, expected))
        assert matches(settings, expected)
    finally:
        worker.stop()
        primary.stop()
        replica.stop()


@pytest.mark.faults
def test_lua_scripts_flushed_mid_stream(stack: Settings, tmp_path: Path) -> None:
    settings = isolated(stack, "script-flush", redis_db=11)
    log = tmp_path / "events.jsonl"
    expected = build_log(log, customers=30, per_customer=40)
    worker = start_ready(settings, tmp_path / "worker.log")
    client = redis.Redis.from_url(settings.redis.redis_url)
    feeder = replay_in_background(settings, log, tmp_path, rate=400)
    try:
        for _ in range(5):
            time.sleep(0.6)
            client.script_flush()
        out, _ = feeder.communicate(timeout=120)
        assert feeder.returncode == 0, out
        wait_until_profiles_match(settings, expected, worker)
        report_fault("Redis SCRIPT FLUSH five times mid-stream", total_events(expected), reflected(settings, expected))
        assert matches(settings, expected)
    finally:
        feeder.kill()
        worker.stop()


@pytest.mark.faults
def test_a_failure_that_cannot_heal_stops_the_worker_without_committing(stack: Settings, tmp_path: Path) -> None:
    """Permissions revoked mid-stream: retrying cannot help, so the worker exits and the batch is re-delivered."""
    server = RedisServer(tmp_path)
    server.start()
    settings = isolated(stack, "no-permission", redis_db=0, redis_url=server.url)
    after = tmp_path / "after.jsonl"
    worker, expected_before = started_with_profiles(settings, tmp_path / "before.jsonl", tmp_path, 20, 10)
    admin = server.client()
    try:
        admin.acl_setuser("default", enabled=True, nopass=True, keys=["*"], channels=["*"],
                          commands=["+@all", "-evalsha", "-eval"])
        expected = combined(expected_before, build_log(after, customers=20, per_customer=10))
        replay(settings, after, tmp_path)
        assert worker.wait_exit(60) == 75, worker.log_tail()
        assert "cannot complete" in worker.log_path.read_text()
        status = json.loads(perso(settings, "status", "--json").stdout)
        assert status["total_lag"] > 0

        admin.acl_setuser("default", enabled=True, nopass=True, keys=["*"], channels=["*"], commands=["+@all"])
        restarted = start_ready(settings, tmp_path / "worker2.log")
        try:
            wait_until_profiles_match(settings, expected, restarted)
            report_fault("Redis permission revoked: worker exits, restarted", total_events(expected),
                         reflected(settings, expected))
            assert matches(settings, expected)
        finally:
            restarted.stop()
    finally:
        worker.stop()
        server.stop()


@pytest.mark.faults
def test_offers_refused_as_too_large_go_to_dead_letters(stack: Settings, tmp_path: Path) -> None:
    settings = isolated(stack, "too-large", redis_db=12, producer_max_request_bytes=680)
    log = tmp_path / "events.jsonl"
    expected = build_log(log, customers=20, per_customer=12, item_prefix="long-" + "x" * 110 + "-")
    worker = start_ready(settings, tmp_path / "worker.log")
    try:
        replay(settings, log, tmp_path)
        wait_until_profiles_match(settings, expected, worker)
        letters = read_topic(settings, settings.kafka.dead_letter_topic,
                             lambda rs: any(r["reason"] == "offer_too_large" for r in rs), 30)
        refused = [r for r in letters if r["reason"] == "offer_too_large"]
        assert refused and all("refused by the broker" in r["detail"] for r in refused)
        worker.assert_alive()
        report_fault("offers refused by the producer as too large", total_events(expected),
                     reflected(settings, expected))
        assert matches(settings, expected)
    finally:
        worker.stop()


@pytest.mark.faults
def test_a_poison_event_that_makes_a_model_raise_is_dead_lettered(stack: Settings, tmp_path: Path) -> None:
    """A learner with a bug some events trigger (tests/plugins/poison.py), configured like any plug-in."""
    settings = isolated(stack, "poison", redis_db=13, plugins=["tests.plugins.poison"],
                        learners=["cooccurrence", "segments", "propensity", "poison"])
    log = tmp_path / "events.jsonl"
    expected = build_log(log, customers=20, per_customer=12)
    poisoned = [click(customer=f"r{n:03d}", item="poison", at=now_iso(60)) for n in range(0, 20, 4)]
    with log.open("ab") as out:
        out.write(b"".join(orjson.dumps(body) + b"\n" for body in poisoned))
    worker = start_ready(settings, tmp_path / "worker.log")
    try:
        replay(settings, log, tmp_path)
        wait_until_profiles_match(settings, expected, worker)
        letters = read_topic(settings, settings.kafka.dead_letter_topic,
                             lambda rs: sum(r["reason"] == "processing_error" for r in rs) >= len(poisoned), 30)
        errors = [r for r in letters if r["reason"] == "processing_error"]
        assert sorted(orjson.loads(r["payload"])["event_id"] for r in errors) == \
            sorted(body["event_id"] for body in poisoned)
        assert all(r["detail"] == "ZeroDivisionError: float division by zero" for r in errors)
        worker.assert_alive()
        report_fault("an event that makes a model raise (5 of them)", total_events(expected),
                     reflected(settings, expected))
        assert matches(settings, expected)  # the poisoned events are undone: not in the counters
    finally:
        worker.stop()
