"""Shared scenario pieces for the exactly-once and fault tests: an event log with known per-customer
counters, a replay through the real CLI, and checks of the profiles against those counters.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from streams.security import redis_async
from streams.settings import Settings
from streams.storage import worker_stats as stats_registry
from streams.worker.contracts import HISTORICAL_HEADER
from tests.helpers import click, now_iso, purchase
from tests.integration.conftest import ROOT, Worker, produce, profile, report_fault, settings_env, wait_for

HEAVY_EVENTS = 400  # more than the old in-state window of 256 ids: a replay must still count none twice


def build_log(path: Path, customers: int, per_customer: int, item_prefix: str = "i") -> dict[str, dict[str, float]]:
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
                counts["monetary"] += 120
            else:
                body = click(customer=customer, item=f"{item_prefix}{round_ % 9}", at=at)
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


# The profile counters a log's expectations are checked against.
COUNTERS = ("events", "views", "frequency", "monetary")


def total_events(expected: dict[str, dict[str, float]]) -> int:
    return sum(int(c["events"]) for c in expected.values())


def combined(first: dict[str, dict[str, float]], then: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Expectations after two logs for the same customers."""
    return {c: {k: first.get(c, {}).get(k, 0) + then[c].get(k, 0) for k in COUNTERS} for c in then}


def counters(settings: Settings, customer: str) -> dict[str, float]:
    fields = profile(settings, customer)
    return {k: float(fields[k]) for k in COUNTERS if k in fields}


def matches(settings: Settings, expected: dict[str, dict[str, float]]) -> bool:
    return all(counters(settings, c) == {k: float(want.get(k, 0)) for k in COUNTERS}
               for c, want in expected.items())


def wait_until_profiles_match(settings: Settings, expected: dict[str, dict[str, float]], worker: Worker) -> None:
    def done() -> bool:
        return all(int(profile(settings, c).get("events", 0)) >= want["events"] for c, want in expected.items())

    wait_for(done, 120, "every replayed event to reach the profiles", worker)


def worker_stats(settings: Settings, pid: int | None = None) -> list[tuple[str, dict[str, bytes]]]:
    """The live workers' stats hashes as `perso status` finds them (through their registry, not a SCAN): all of
    them, or the one of a worker process."""

    async def read() -> list[tuple[str, dict[str, bytes]]]:
        client = redis_async(settings.redis)
        try:
            return await stats_registry.read_all(client, settings.app_id)
        finally:
            await client.aclose()

    found = asyncio.run(read())
    return [(name, fields) for name, fields in found if pid is None or name.endswith(f":{pid}")]


def worker_stat(settings: Settings, name: str, pid: int | None = None) -> int:
    """A counter from the workers' stats hashes: summed over all of them, or of one worker process."""
    return sum(int(float(fields.get(name, 0))) for _, fields in worker_stats(settings, pid))


def start_ready(settings: Settings, log: Path, probe_at: datetime | None = None) -> Worker:
    """A worker that has processed a first event (the probe, at `probe_at`: a test of history probes within it,
    as a probe from today would move its partition's stream time to today)."""
    worker = Worker(settings, log)
    worker.start()
    probe = click(customer="probe", at=probe_at if probe_at is not None else now_iso())
    # Marked as a historical replay marks its records, so a probe of any age is accepted.
    produce(settings, [("clickstream", "probe", orjson.dumps(probe))], headers=[(HISTORICAL_HEADER, b"1")])
    wait_for(lambda: profile(settings, "probe"), 90, "the worker to process a first event", worker)
    return worker


def started_with_profiles(settings: Settings, log: Path, tmp_path: Path, customers: int, per_customer: int
                          ) -> tuple[Worker, dict[str, dict[str, float]]]:
    """Write a log, start a worker, replay the log through it and wait until the profiles reflect it."""
    expected = build_log(log, customers=customers, per_customer=per_customer)
    worker = start_ready(settings, tmp_path / "worker.log")
    try:
        replay(settings, log, tmp_path)
        wait_until_profiles_match(settings, expected, worker)
    except BaseException:
        worker.stop()
        raise
    return worker, expected


def finish_after_fault(settings: Settings, feeder: subprocess.Popen[str], expected: dict[str, dict[str, float]],
                       worker: Worker, fault: str) -> None:
    """Let a background replay finish, wait until `worker` reflects the whole log, report and check it."""
    sent = total_events(expected)
    out, _ = feeder.communicate(timeout=120)
    assert feeder.returncode == 0 and f"published {sent}" in out, out
    wait_until_profiles_match(settings, expected, worker)
    report_fault(fault, sent, reflected(settings, expected))
    assert matches(settings, expected)


def replay_in_background(settings: Settings, log: Path, tmp_path: Path, rate: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "streams.cli", "replay", str(log), "--no-progress",
                             "--rate", str(rate), "--rejects", str(tmp_path / "rejects.jsonl")],
                            cwd=ROOT, env=settings_env(settings), stdout=subprocess.PIPE, text=True)


def reflected(settings: Settings, expected: dict[str, dict[str, float]]) -> int:
    """Events of the log that the profiles account for."""
    return sum(int(profile(settings, c).get("events", 0)) for c in expected)
