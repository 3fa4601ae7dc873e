"""End-to-end figures on the embedded stack: sustained events/s and event-to-offer latency.

    python bench/e2e.py [--events 100000] [--latency-rate 0 (= half the throughput)] [--latency-seconds 20]
                        [--profile SECONDS (py-spy the draining worker)] [--experiment holdout:10,nbo:90]
                        [--no-bare]

Runs against PERSO_BROKER_URL / PERSO_REDIS_URL (start them with `perso stack up`). Uses fresh topics and a
fresh consumer group each run. Phase 1 preloads N events, starts one worker process and measures how fast
it drains them with all models learning; before and after it, a bare Faust agent (bench/bare_agent.py: the
worker's own Faust app, taking and acking batches and nothing else) drains the same backlog in its own consumer
group, and the engine's rate is printed as a share of the bare agent's (the framework's ceiling, measured in the
same run because this machine's speed varies by the minute). Phase 2 feeds a fixed rate (default: half the
measured throughput) into the running worker and measures, for every offer, the time from the event's timestamp
(stamped when produced) to the offer's arrival on the offers topic, and for every profile written, its Redis
write time minus its last event's timestamp.
Prints the figures on the last lines and writes bench/results/e2e.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import worker_profile  # noqa: E402

from streams.devstack.feed import run_feed  # noqa: E402
from streams.devstack.stack import create_topics  # noqa: E402
from streams.ops.experiments import start_experiment, stop_experiment  # noqa: E402
from streams.ops.tail import follow_topic  # noqa: E402
from streams.security import redis_sync  # noqa: E402
from streams.settings import KafkaSettings, Settings  # noqa: E402
from streams.storage.keys import EXPERIMENTS_KEY, stats_key  # noqa: E402
from streams.worker.sensors import STAGES  # noqa: E402


def worker_counters(client: redis.Redis, app_id: str, pid: int) -> dict[str, float]:
    # The worker's own stats hash, read directly: a SCAN of a large keyspace every 0.2 s would compete
    # with the worker for the machine's two cores.
    key = stats_key(app_id, socket.gethostname(), pid)
    numbers = {}
    for field, value in client.hgetall(key).items():  # type: ignore[union-attr]
        try:
            numbers[field.decode()] = float(value)
        except ValueError:  # JSON fields (dead letter reasons, health), not counters
            continue
    return numbers


@dataclass
class Drain:
    """A worker draining a preloaded backlog: when it took its first batch, and how long the rest took."""

    joined_s: float  # from start to the first batch (group join, recovery)
    first_records: float
    seconds: float  # from the first batch to the last record

    def rate(self, events: int) -> float:
        """Events/s after the first batch (the join is not the engine's speed)."""
        return (events - self.first_records) / max(self.seconds, 1e-9)


def drain(client: redis.Redis, app_id: str, proc: subprocess.Popen[bytes], events: int,
          on_first: Callable[[], None] | None = None, timeout_s: float = 900.0, log: Path | None = None) -> Drain:
    """Wait until the worker `proc` has taken `events` records, polling its stats hash every 0.2 s; `on_first`
    runs once at its first batch (a profiler, say). Exits the bench if the worker dies or times out."""
    started = time.monotonic()
    first: tuple[float, float] | None = None
    while True:
        done = worker_counters(client, app_id, proc.pid).get("records", 0)
        if done and first is None:
            first = (time.monotonic(), done)
            if on_first is not None:
                on_first()
                continue
        if done >= events:
            break
        if proc.poll() is not None:
            raise SystemExit(f"the worker exited with {proc.returncode}" + (f"; see {log}" if log else ""))
        if time.monotonic() - started > timeout_s:
            raise SystemExit(f"timed out with {done:.0f} of {events} processed")
        time.sleep(0.2)
    assert first is not None
    return Drain(first[0] - started, first[1], time.monotonic() - first[0])


def batch_stages(before: dict[str, float], after: dict[str, float]) -> dict[str, object] | None:
    """The worker's batches between two counter readings: how many, how big, and ms per stage."""
    batches = after.get("batches", 0) - before.get("batches", 0)
    if batches <= 0:
        return None
    return {"batches": int(batches),
            "records_per_batch": round((after.get("records", 0) - before.get("records", 0)) / batches, 1),
            "ms": {k: round((after.get(f"{k}_seconds", 0) - before.get(f"{k}_seconds", 0)) / batches * 1000, 2)
                   for k in STAGES}}


def full_collections(before: dict[str, float], after: dict[str, float]) -> dict[str, float] | None:
    """The worker's full garbage collections between two counter readings (each pauses the batch it falls in):
    how many, their mean pause, and the longest since the worker started."""
    if "gc_collections_gen2" not in after:
        return None
    count = after["gc_collections_gen2"] - before.get("gc_collections_gen2", 0)
    paused = after.get("gc_pause_seconds_gen2", 0) - before.get("gc_pause_seconds_gen2", 0)
    return {"count": int(count), "mean_ms": round(paused / count * 1000, 1) if count else 0.0,
            "longest_ms_since_start": after.get("gc_longest_pause_ms_gen2", 0.0)}


def loop_lateness(before: dict[str, float], after: dict[str, float]) -> dict[str, float] | None:
    """The worker's event-loop probes between two counter readings (one every 0.1 s, streams/worker/loop_stalls.py):
    how many, how many woke at least 10/50/100/500 ms late (what the latency tail is made of)."""
    if "loop_probes" not in after:
        return None
    figures = {name: after[name] - before.get(name, 0) for name in after
               if name == "loop_probes" or (name.startswith("loop_late_") and name.endswith("ms"))}
    figures["longest_ms_since_start"] = after.get("loop_longest_stall_ms", 0.0)
    return figures


def delete_customers(client: redis.Redis, prefixes: list[str]) -> int:
    """Remove this run's customers (state, profile, seen ids, and their places in the partitions' wake sets)
    from the shared Redis."""
    deleted = 0
    wake_sets = list(client.scan_iter("wake:*", count=1000))
    for prefix in prefixes:
        for kind in ("state", "profile", "seen"):
            batch = list(client.scan_iter(f"{kind}:{prefix}*", count=1000))
            for start in range(0, len(batch), 1000):
                deleted += int(client.unlink(*batch[start:start + 1000]))  # type: ignore[arg-type]
        for wake in wake_sets:
            due = [member for member, _ in client.zscan_iter(wake, match=f"{prefix}*", count=1000)]
            for start in range(0, len(due), 1000):
                client.zrem(wake, *due[start:start + 1000])
    return deleted


def profile_latencies_ms(client: redis.Redis, prefix: str) -> list[float]:
    """Per profile written in the latency phase: its Redis write time minus its last event's timestamp."""
    latencies = []
    for key in client.scan_iter(f"profile:{prefix}*", count=1000):
        updated, last_event = client.hmget(key, ["updated_at", "last_event_ts"])  # type: ignore[misc]
        if updated and last_event:
            gap = datetime.fromisoformat(updated.decode()) - datetime.fromisoformat(last_event.decode())
            latencies.append(gap.total_seconds() * 1000)
    return latencies


def bare_agent_rate(env: dict[str, str], client: redis.Redis, events: int, label: str) -> float:
    """Events/s of a bare Faust agent draining the run's backlog (after its first batch, as the engine's rate)."""
    app_id = f"{env['PERSO_APP_ID']}-{label}"
    key = f"bench:bare:{app_id}"
    client.delete(key)
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "bare_agent.py")], cwd=ROOT,
                            env={**env, "PERSO_APP_ID": app_id}, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        started = time.monotonic()
        while True:
            seen = {k.decode(): float(v) for k, v in client.hgetall(key).items()}  # type: ignore[union-attr]
            if seen.get("records", 0) >= events:
                break
            if proc.poll() is not None:
                raise SystemExit(f"the bare agent exited with {proc.returncode}")
            if time.monotonic() - started > 600:
                raise SystemExit(f"the bare agent timed out with {seen.get('records', 0):.0f} of {events}")
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        client.delete(key)
    return (seen["records"] - seen["first_records"]) / max(seen["last_at"] - seen["first_at"], 1e-9)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def latency_phase(settings: KafkaSettings, rate: float, seconds: float, run: str) -> tuple[list[float], int]:
    """Seconds from event to offer for each offer answering an event of this phase's feed, and how many other
    offers arrived meanwhile (timed triggers and re-scoring visits of the drained customers, whose events are
    minutes old: counting them put a few 90-second "latencies" into the figures)."""
    latencies: list[float] = []
    others = 0
    prefix = f"lat{run}-"

    async def collect() -> None:
        nonlocal others
        async for offer in follow_topic(settings, settings.offers_topic):
            arrived = time.time()
            if not offer["customer_id"].startswith(prefix) or offer.get("moment"):
                others += 1
                continue
            latencies.append(arrived - datetime.fromisoformat(offer["event_ts"]).timestamp())

    tail = asyncio.create_task(collect())
    await asyncio.sleep(1.0)  # the tail seeks to the end before the feed starts
    await run_feed(settings, customers=5000, rate=rate, duration_s=seconds, seed=11, prefix=prefix)
    await asyncio.sleep(2.0)
    tail.cancel()
    return latencies, others


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--latency-rate", type=float, default=0.0,
                        help="events/s offered in the latency phase; 0: half the measured throughput")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--profile", type=float, default=0.0, metavar="SECONDS",
                        help="sample the draining worker with py-spy this long and print where its time goes")
    parser.add_argument("--experiment", metavar="ARMS", default=None,
                        help="run with an experiment of these arms (every customer joins; offers are attributed)")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare Faust agent's drains")
    args = parser.parse_args()

    run = uuid.uuid4().hex[:6]
    env = {**os.environ, "PERSO_APP_ID": f"bench-{run}", "PERSO_CLICKSTREAM_TOPIC": f"bench-{run}-clickstream",
           "PERSO_PURCHASES_TOPIC": f"bench-{run}-purchases", "PERSO_FEEDBACK_TOPIC": f"bench-{run}-feedback",
           "PERSO_OFFERS_TOPIC": f"bench-{run}-offers",
           "PERSO_DEAD_LETTER_TOPIC": f"bench-{run}-deadletter", "PERSO_WEB_ENABLED": "false"}
    os.environ.update(env)
    settings = Settings()
    client = redis_sync(settings.redis)
    asyncio.run(create_topics(settings.kafka))

    profile: dict[str, float] | None = None
    t0 = time.monotonic()
    # Customer ids unique to the run: states left in Redis by an earlier run would otherwise be loaded and grown.
    feed = asyncio.run(run_feed(settings.kafka, customers=args.customers, rate=1e9, max_events=args.events, seed=3,
                                prefix=f"e2e{run}-"))
    print(f"preloaded {feed.sent} events in {time.monotonic() - t0:.1f}s ({feed.rate:.0f}/s produce)", flush=True)

    bare_rates: list[float] = []
    if not args.no_bare:
        bare_rates.append(bare_agent_rate(env, client, feed.sent, "bare1"))
        print(f"bare Faust agent drained the backlog at {bare_rates[-1]:.0f} events/s", flush=True)

    experiment = f"bench-{run}" if args.experiment else None
    if experiment:  # refused while another experiment runs in this Redis: stop it first
        asyncio.run(start_experiment(settings, experiment, args.experiment))
        print(f"experiment {experiment} running: {args.experiment}", flush=True)
    log_path = ROOT / "bench" / "results" / f"worker-{run}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker", "--loglevel", "warn"],
                                  cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        def profile_first_batches() -> None:
            nonlocal profile
            if args.profile:
                stacks = worker_profile.sample(worker.pid, args.profile)
                (ROOT / "bench" / "results" / "worker-profile.txt").write_text(stacks)  # py-spy collapsed
                profile = worker_profile.breakdown(stacks)

        drained_run = drain(client, settings.app_id, worker, feed.sent, on_first=profile_first_batches, log=log_path)
        drained = drained_run.seconds
        throughput = drained_run.rate(feed.sent)
        print(f"worker took its first batch {drained_run.joined_s:.1f}s after it started", flush=True)
        print(f"drained {feed.sent} events in {drained:.1f}s after the first batch", flush=True)
        if not args.no_bare:
            bare_rates.append(bare_agent_rate(env, client, feed.sent, "bare2"))
            print(f"bare Faust agent drained the backlog at {bare_rates[-1]:.0f} events/s", flush=True)

        rate = args.latency_rate or round(throughput / 2)
        before = worker_counters(client, settings.app_id, worker.pid)
        latencies, other_offers = asyncio.run(latency_phase(settings.kafka, rate, args.latency_seconds, run))
        time.sleep(1.5)  # the worker publishes its counters every second
        after = worker_counters(client, settings.app_id, worker.pid)
        stages = batch_stages(before, after)
        collections = full_collections(before, after)
        lateness = loop_lateness(before, after)
        to_profile = profile_latencies_ms(client, f"lat{run}-")
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        delete_customers(client, [f"e2e{run}-", f"lat{run}-"])
        if experiment:
            asyncio.run(stop_experiment(settings, experiment))
            client.hdel(EXPERIMENTS_KEY, experiment)
            for key in client.scan_iter(f"experiment:{experiment}:*"):
                client.delete(key)

    ms = [v * 1000 for v in latencies]
    result = {
        "events": feed.sent, "throughput_events_per_s": round(throughput, 1), "experiment": args.experiment,
        "cython_optimizations": settings.worker.cython_optimizations,
        "bare_agent_events_per_s": [round(r, 1) for r in bare_rates],
        "share_of_bare_agent": round(throughput / statistics.fmean(bare_rates), 3) if bare_rates else None,
        "latency_offered_rate": rate, "offers_measured": len(ms), "other_offers_not_measured": other_offers,
        "event_to_offer_ms": {"p50": round(percentile(ms, 0.50), 1), "p95": round(percentile(ms, 0.95), 1),
                              "p99": round(percentile(ms, 0.99), 1), "mean": round(statistics.fmean(ms), 1)}
        if ms else None,
        "worker_batches_in_latency_phase": stages,
        "worker_full_collections_in_latency_phase": collections,
        "worker_event_loop_in_latency_phase": lateness,
        "worker_profile_percent": profile,
        "profiles_measured": len(to_profile),
        "event_to_profile_ms": {"p50": round(percentile(to_profile, 0.50), 1),
                                "p95": round(percentile(to_profile, 0.95), 1),
                                "p99": round(percentile(to_profile, 0.99), 1)} if to_profile else None,
    }
    out = ROOT / "bench" / "results" / "e2e.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    if profile:
        print("where the draining worker's time went (py-spy samples): "
              + "; ".join(f"{part} {share}%" for part, share in profile.items()))
    print(f"throughput: {throughput:.0f} events/s (one worker, all models learning)")
    if bare_rates:
        print(f"bare Faust agent on the same backlog: {statistics.fmean(bare_rates):.0f} events/s (before and after: "
              f"{', '.join(f'{r:.0f}' for r in bare_rates)}); the engine drains {result['share_of_bare_agent']:.0%} "
              "of it")
    if stages:
        print(f"worker at {rate:.0f} events/s: {stages['batches']} batches of {stages['records_per_batch']} records; "
              "ms per batch: " + ", ".join(f"{k} {stages['ms'][k]}" for k in STAGES))
    if collections:
        longest = collections["longest_ms_since_start"]
        print(f"worker's full garbage collections in the latency phase: {collections['count']}, "
              f"{collections['mean_ms']} ms each on average (longest since start {longest} ms)")
    if lateness:
        print(f"worker's event loop in the latency phase: {lateness['loop_probes']:.0f} probes, woke late by at "
              "least " + ", ".join(f"{name[len('loop_late_'):]} {count:.0f}" for name, count in lateness.items()
                                   if name.startswith("loop_late_"))
              + f" (longest since start {lateness['longest_ms_since_start']:.0f} ms)")
    if ms:
        lat = result["event_to_offer_ms"]
        assert isinstance(lat, dict)
        print(f"event-to-offer at {rate:.0f} events/s: p50 {lat['p50']} ms, p95 {lat['p95']} ms, "
              f"p99 {lat['p99']} ms over {len(ms)} offers answering the phase's events "
              f"({other_offers} other offers meanwhile: timed triggers, visits)")
    if to_profile:
        lat = result["event_to_profile_ms"]
        assert isinstance(lat, dict)
        print(f"event-to-profile at {rate:.0f} events/s: p50 {lat['p50']} ms, p95 {lat['p95']} ms, "
              f"p99 {lat['p99']} ms over {len(to_profile)} profiles (each customer's last event)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
