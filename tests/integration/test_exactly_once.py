"""Every accepted event is reflected exactly once in profiles: replayed twice, across a SIGKILL, after a rebuild.

The log is replayed with the real `perso replay` command into a running worker on the real broker and Redis.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from streams.settings import Settings
from tests.integration.conftest import ROOT, Worker, isolated, profile, settings_env, wait_for
from tests.integration.scenario import (
    build_log,
    counters,
    finish_after_fault,
    matches,
    replay,
    replay_in_background,
    start_ready,
    total_events,
    wait_until_profiles_match,
    worker_stat,
)


@pytest.fixture()
def one_pass(stack: Settings, tmp_path: Path) -> tuple[Settings, Path, dict[str, dict[str, float]]]:
    settings = isolated(stack, "twice", redis_db=4)
    log = tmp_path / "events.jsonl"
    return settings, log, build_log(log, customers=30, per_customer=12)


def test_replaying_a_log_twice_counts_each_event_once_and_a_rebuild_ends_the_same(
        one_pass: tuple[Settings, Path, dict[str, dict[str, float]]], tmp_path: Path) -> None:
    settings, log, expected = one_pass
    total = total_events(expected)
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


@pytest.mark.faults
def test_a_worker_killed_mid_replay_ends_with_each_event_counted_once(stack: Settings, tmp_path: Path) -> None:
    settings = isolated(stack, "killed", redis_db=5)
    log = tmp_path / "events.jsonl"
    expected = build_log(log, customers=60, per_customer=60)
    total = total_events(expected)
    worker = start_ready(settings, tmp_path / "worker.log")
    feeder = replay_in_background(settings, log, tmp_path, rate=1500)
    try:
        wait_for(lambda: worker_stat(settings, "accepted") >= total // 4, 60, "a quarter of the log", worker)
        worker.kill()
        assert worker_stat(settings, "accepted") < total, "the worker finished before it was killed"
        worker = Worker(settings, tmp_path / "worker-restarted.log")
        worker.start()
        finish_after_fault(settings, feeder, expected, worker, "worker SIGKILLed mid-replay, restarted")
    finally:
        feeder.kill()
        worker.stop()
