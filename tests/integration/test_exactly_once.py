"""Every accepted event is reflected exactly once in profiles: replayed twice, across a SIGKILL, after a rebuild.

The log is replayed with the real `perso replay` command into a running worker on the real broker and Redis.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import redis

from streams.settings import Settings
from tests.helpers import click, now_iso, purchase
from tests.integration.conftest import ROOT, Worker, isolated, produce, profile, settings_env, wait_for

HEAVY_EVENTS = 400  # more than the old in-state window of 256 ids: a replay must still count none twice


def build_log(path: Path, customers: int, per_customer: int) -> dict[str, dict[str, float]]:
    """Write a JSON Lines log (plus two invalid lines); return the counters one pass must produce."""
    start = datetime.now(UTC) - timedelta(hours=12)
    expected: dict[str, Counter[str]] = {}
    lines: list[bytes] = []
    plan = [(f"r{c:03d}", per_customer + c % 5) for c in range(customers)] + [("heavy", HEAVY_EVENTS)]
    step = 0
    for round_ in range(max(n for _, n in plan)):
        for customer, n in plan:
            if round_ >= n:
                continue
            step += 1
            at = start + timedelta(seconds=step)
            counts = expected.setdefault(customer, Counter())
            if round_ % 6 == 5:
                body = purchase(customer=customer, items=(("ele-phone", "electronics", 120.0),), at=at)
                counts["frequency"] += 1
                counts["monetary"] += 120.0
            else:
                body = click(customer=customer, item=f"i{round_ % 9}", at=at)
                counts["views"] += 1
            counts["events"] += 1
            lines.append(orjson.dumps(body))
    lines.insert(3, b'{"event_id": "broken", "customer_id": ')
    lines.insert(10, orjson.dumps(click(customer="r001", price=-5.0)))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return {c: dict(counts) for c, counts in expected.items()}


def replay(settings: Settings, log: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "streams.cli", "replay", str(log), "--no-progress",
                             "--rejects", str(tmp_path / "rejects.jsonl"), *extra],
                            cwd=ROOT, env=settings_env(settings), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def counters(settings: Settings, customer: str) -> dict[str, float]:
    fields = profile(settings, customer)
    return {k: float(fields[k]) for k in ("events", "views", "frequency", "monetary") if k in fields}


def matches(settings: Settings, expected: dict[str, dict[str, float]]) -> bool:
    return all(counters(settings, c) == {k: float(want.get(k, 0)) for k in ("events", "views", "frequency",
                                                                                 "monetary")}
               for c, want in expected.items())


def wait_until_profiles_match(settings: Settings, expected: dict[str, dict[str, float]], worker: Worker) -> None:
    def done() -> bool:
        return all(int(profile(settings, c).get("events", 0)) >= want["events"] for c, want in expected.items())

    wait_for(done, 120, "every replayed event to reach the profiles", worker)


def worker_stat(settings: Settings, name: str) -> int:
    client = redis.Redis.from_url(settings.redis_url)
    try:
        return sum(int(float(client.hget(key, name) or 0))
                   for key in client.scan_iter(match=f"perso:stats:{settings.app_id}:*"))
    finally:
        client.close()


def start_ready(settings: Settings, log: Path) -> Worker:
    worker = Worker(settings, log)
    worker.start()
    probe = click(customer="probe", at=now_iso())
    produce(settings, [("clickstream", "probe", orjson.dumps(probe))])
    wait_for(lambda: profile(settings, "probe"), 90, "the worker to process a first event", worker)
    return worker


@pytest.fixture()
def one_pass(stack: Settings, tmp_path: Path) -> tuple[Settings, Path, dict[str, dict[str, float]]]:
    settings = isolated(stack, "twice", redis_db=4)
    log = tmp_path / "events.jsonl"
    return settings, log, build_log(log, customers=30, per_customer=12)


def test_replaying_a_log_twice_counts_each_event_once_and_a_rebuild_ends_the_same(
        one_pass: tuple[Settings, Path, dict[str, dict[str, float]]], tmp_path: Path) -> None:
    settings, log, expected = one_pass
    total = sum(int(c["events"]) for c in expected.values())
    worker = start_ready(settings, tmp_path / "worker.log")
    try:
        first = replay(settings, log, tmp_path)
        assert f"published {total}" in first.stdout and "rejected 2" in first.stdout, first.stdout
        rejects = [orjson.loads(line) for line in (tmp_path / "rejects.jsonl").read_bytes().splitlines()]
        assert sorted(r["reason"] for r in rejects) == ["malformed_json", "out_of_range"]
        wait_until_profiles_match(settings, expected, worker)
        assert matches(settings, expected)

        replay(settings, log, tmp_path)
        wait_for(lambda: worker_stat(settings, "duplicates") >= total, 120, "the second pass to be consumed", worker)
        assert worker_stat(settings, "duplicates") == total
        assert worker_stat(settings, "accepted") == total + 1  # + the probe
        assert matches(settings, expected), {c: counters(settings, c) for c in list(expected)[:3]}
    finally:
        worker.stop()

    # Rebuild: wipe derived state, rewind the group, recompute from the topics (which hold both passes).
    before = {c: profile(settings, c) for c in expected}
    result = subprocess.run([sys.executable, "-m", "streams.cli", "rebuild", "--yes"], cwd=ROOT,
                            env=settings_env(settings), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert not profile(settings, "heavy")
    worker = Worker(settings, tmp_path / "worker-rebuilt.log")
    worker.start()
    try:
        wait_until_profiles_match(settings, expected, worker)
        wait_for(lambda: worker_stat(settings, "records") >= 2 * total + 1, 120, "the rebuild to finish", worker)
        assert matches(settings, expected)
        for customer in expected:
            after = profile(settings, customer)
            for field in ("events", "views", "frequency", "monetary", "sessions", "top_categories"):
                assert after[field] == before[customer][field], (customer, field)
    finally:
        worker.stop()


def test_a_worker_killed_mid_replay_ends_with_each_event_counted_once(stack: Settings, tmp_path: Path) -> None:
    settings = isolated(stack, "killed", redis_db=5)
    log = tmp_path / "events.jsonl"
    expected = build_log(log, customers=60, per_customer=60)
    total = sum(int(c["events"]) for c in expected.values())
    worker = start_ready(settings, tmp_path / "worker.log")
    feeder = subprocess.Popen([sys.executable, "-m", "streams.cli", "replay", str(log), "--no-progress",
                               "--rate", "1500", "--rejects", str(tmp_path / "rejects.jsonl")],
                              cwd=ROOT, env=settings_env(settings), stdout=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: worker_stat(settings, "accepted") >= total // 4, 60, "a quarter of the log", worker)
        worker.kill()
        assert worker_stat(settings, "accepted") < total, "the worker finished before it was killed"
        worker = Worker(settings, tmp_path / "worker-restarted.log")
        worker.start()
        out, _ = feeder.communicate(timeout=120)
        assert feeder.returncode == 0 and f"published {total}" in out, out
        wait_until_profiles_match(settings, expected, worker)
        assert matches(settings, expected)
    finally:
        feeder.kill()
        worker.stop()
