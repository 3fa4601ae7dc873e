"""A soak: one worker under a steady feed for a long while, watched for memory growth, lag and lost events.

    python bench/soak.py [--minutes 60] [--rate 2000] [--customers 100000] [--sample-s 10] [--warmup-minutes 15]

Runs against PERSO_BROKER_URL / PERSO_REDIS_URL (start them with `perso stack up`); fresh topics and consumer
group each run. Starts one worker and `perso feed` at --rate events/s (about half of what one worker drains
on this 2-core machine: bench/e2e.py) with 2% deliberately bad records for --minutes, then waits for the
worker to drain. Every --sample-s seconds it records the worker's resident memory (/proc), its lag (input
events on its partitions not yet committed: the `events_waiting` of its stats), and its counters. At the end,
lost events = sent - (applied + dead-lettered + duplicates), which must be 0, where sent is what the run's
input topics hold (their end offsets: the feed's answers to offers included). Writes bench/results/soak.csv
and bench/results/soak.png (memory, lag and events over time) and prints the summary on its last lines.

Memory is judged after --warmup-minutes: by then every customer should have been seen and their states grown to
their caps (fewer customers than the feed reaches in that time keep growing: new customers are not a leak). Seen
is not enough: the worker keeps its PERSO_STATE_CACHE_HOT (20,000) most recent customers as ~7 KB objects and
the rest compressed, and with --customers at or below that the hot tier fills for a long while, as the feed's
rarest customers come back (docs/benchmarks.md, "Where the soak's memory went"). Each sample records the worker's
cached and hot customer counts, and the verdict says whether the hot tier was full when the warm-up ended (run
with --customers well above PERSO_STATE_CACHE_HOT for a steady state). The last line says whether the worker's RSS
stayed within ±10% of its value at the end of the warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no screen here
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from e2e import delete_customers, worker_counters  # noqa: E402
from state_memory import state_memory  # noqa: E402

from streams.ops.status import consumer_lag  # noqa: E402
from streams.security import redis_sync  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.worker.collector import full_collections_line  # noqa: E402

FIELDS = ("seconds", "rss_mib", "events_waiting", "records", "accepted", "dead_letters", "duplicates", "offers",
          "cached_customers", "hot_customers", "states_mib")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def plot(rows: list[dict[str, float]], path: Path, title: str, warmup_minutes: float) -> None:
    minutes = [row["seconds"] / 60 for row in rows]
    figure, (memory, lag, events) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    memory.plot(minutes, [row["rss_mib"] for row in rows], label="RSS")
    sized = [row for row in rows if sized_row(row)]
    if sized:
        memory.plot([row["seconds"] / 60 for row in sized], [row["rss_mib"] - row["states_mib"] for row in sized],
                    marker=".", label="RSS without the customer states")
    memory.axvline(warmup_minutes, color="grey", linestyle=":", label="end of warm-up")
    memory.legend()
    memory.set_ylabel("worker RSS (MiB)")
    lag.plot(minutes, [row["events_waiting"] for row in rows])
    lag.set_ylabel("lag (events waiting)")
    events.plot(minutes, [row["records"] for row in rows], label="consumed")
    events.plot(minutes, [row["accepted"] for row in rows], label="applied")
    events.plot(minutes, [row["dead_letters"] for row in rows], label="dead-lettered")
    events.set_ylabel("events")
    events.set_xlabel("minutes")
    events.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def topic_records(settings: Settings) -> int:
    """Records on the run's input topics (fresh topics: their end offsets add up to what was produced)."""
    return sum(partition.end for partition in asyncio.run(consumer_lag(settings)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=2000.0, help="events/s fed")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--warmup-minutes", type=float, default=15.0,
                        help="memory is judged against its value at the end of this")
    parser.add_argument("--state-memory-every", type=float, default=5.0, metavar="MINUTES",
                        help="size the customer states the worker holds this often (bench/state_memory.py; 0: never)")
    args = parser.parse_args()

    run = uuid.uuid4().hex[:6]
    env = {**os.environ, "PERSO_APP_ID": f"soak-{run}", "PERSO_CLICKSTREAM_TOPIC": f"soak-{run}-clickstream",
           "PERSO_PURCHASES_TOPIC": f"soak-{run}-purchases", "PERSO_FEEDBACK_TOPIC": f"soak-{run}-feedback",
           "PERSO_OFFERS_TOPIC": f"soak-{run}-offers", "PERSO_DEAD_LETTER_TOPIC": f"soak-{run}-deadletter",
           "PERSO_WEB_ENABLED": "false"}
    os.environ.update(env)
    settings = Settings()
    client = redis_sync(settings.redis)
    subprocess.run([sys.executable, "-m", "streams.cli", "topics"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    log = results / f"soak-worker-{run}.log"
    with open(log, "wb") as out:  # the worker keeps its own copy of the descriptor
        worker = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker", "--loglevel", "warn"], cwd=ROOT,
                                  env=env, stdout=out, stderr=subprocess.STDOUT)
    # The feed's progress goes to a file: a pipe nobody reads fills up after a while and blocks the feed.
    feed_log = results / f"soak-feed-{run}.log"
    with open(feed_log, "wb") as out:
        feed = subprocess.Popen([sys.executable, "-m", "streams.cli", "feed", "--rate", str(args.rate),
                                 "--duration", str(args.minutes * 60), "--customers", str(args.customers),
                                 "--prefix", f"soak{run}-"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    rows: list[dict[str, float]] = []
    counters: dict[str, float] = {}
    started = time.monotonic()
    sent: int | None = None
    sized_at = 0.0
    # Stopped with SIGTERM (kill, a CI timeout) as with Ctrl-C: the finally below stops the worker and the feed and
    # deletes the soak's customers from Redis.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        while True:
            time.sleep(args.sample_s)
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited with {worker.returncode}: see {log}")
            counters = worker_counters(client, settings.app_id, worker.pid)
            row = {"seconds": round(time.monotonic() - started, 1), "rss_mib": round(rss_mib(worker.pid), 1),
                   **{name: counters.get(name, 0.0) for name in FIELDS[2:-1]}, "states_mib": math.nan}
            if args.state_memory_every and row["seconds"] - sized_at >= args.state_memory_every * 60 and sent is None:
                # Read from Redis as of now: the worker's RSS is sampled just before, the batches in between add little.
                sized_at = row["seconds"]
                held = state_memory(client, f"soak{run}-", settings.worker.state_cache_hot)
                row["states_mib"] = round(held.total_mib, 1)
                print(f"customer states: {held}", flush=True)
            rows.append(row)
            print(" ".join(f"{k}={v:g}" for k, v in row.items() if not math.isnan(v)), flush=True)
            if sent is None and feed.poll() is not None:
                # What reached the input topics, whatever the feed's own count says: a feed that dies on a
                # produce timeout at the end has sent more than its last progress line.
                sent = topic_records(settings)
                if feed.returncode != 0:
                    print(f"the feed exited with {feed.returncode} (see {feed_log}); counting the {sent} records "
                          "on the input topics", flush=True)
            if sent is not None and row["accepted"] + row["dead_letters"] + row["duplicates"] >= sent:
                break
            if time.monotonic() - started > args.minutes * 60 + 600:
                break  # drained or not, stop: the summary says what is missing
    finally:
        feed.kill()
        worker.terminate()
        worker.wait(timeout=60)
        delete_customers(client, [f"soak{run}-"])
    if sent is None:  # the feed was still running when the time ran out
        sent = topic_records(settings)
    with open(results / "soak.csv", "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    last = rows[-1]
    lost = (sent or 0) - int(last["accepted"] + last["dead_letters"] + last["duplicates"])
    plot(rows, results / "soak.png", f"soak: {args.rate:.0f} events/s for {args.minutes:g} min, "
         f"{args.customers:,} customers; lost {lost}", args.warmup_minutes)
    print(f"sent {sent}, applied {last['accepted']:.0f}, dead-lettered {last['dead_letters']:.0f}, duplicates "
          f"{last['duplicates']:.0f}: lost {lost}")
    print(f"lag at most {max(row['events_waiting'] for row in rows):.0f} events; wrote {results / 'soak.csv'} "
          f"and {results / 'soak.png'}")
    flat = memory_verdict(rows, args.warmup_minutes * 60)
    outside_states_verdict(rows, args.warmup_minutes * 60)
    hot_tier_verdict(rows, args.warmup_minutes * 60, settings.worker.state_cache_hot)
    collections_summary(counters)
    return 0 if lost == 0 and flat else 1


def memory_verdict(rows: list[dict[str, float]], warmup_s: float, tolerance: float = 0.10) -> bool:
    """Print the worker's RSS after the warm-up against its value when the warm-up ended; True when it stayed
    within `tolerance` of it. Only the feed's minutes count (draining at the end is not steady state)."""
    after = [row for row in rows if row["seconds"] >= warmup_s]
    if not after:
        print(f"memory: the run ended before its {warmup_s / 60:g}-minute warm-up; not judged")
        return False
    reference = after[0]["rss_mib"]
    low, high = min(row["rss_mib"] for row in after), max(row["rss_mib"] for row in after)
    spread = max(high / reference - 1.0, 1.0 - low / reference)
    flat = spread <= tolerance
    print(f"memory: worker RSS {rows[0]['rss_mib']:.0f} MiB at the first sample, {reference:.0f} MiB at the end of "
          f"the {warmup_s / 60:g}-minute warm-up, then between {low:.0f} and {high:.0f} MiB, {last_rss(rows):.0f} at "
          f"the end: {spread:+.1%} at most, {'flat' if flat else 'NOT flat'} (±{tolerance:.0%})")
    return flat


def outside_states_verdict(rows: list[dict[str, float]], warmup_s: float, tolerance: float = 0.10) -> None:
    """Print the worker's RSS less what its customer states take (sized from the states themselves) after the
    warm-up: whether anything besides the states grows. States grow toward their caps for hours on a shop with
    rare customers; the rest of the worker should not grow at all."""
    sized = [row for row in rows if row["seconds"] >= warmup_s and sized_row(row)]
    if len(sized) < 2:
        print("memory without the customer states: fewer than two sizings after the warm-up; not judged")
        return
    other = [row["rss_mib"] - row["states_mib"] for row in sized]
    states = [row["states_mib"] for row in sized]
    spread = max(max(other) / other[0] - 1.0, 1.0 - min(other) / other[0])
    print(f"memory without the customer states: {other[0]:.0f} MiB at minute {sized[0]['seconds'] / 60:.0f}, "
          f"{other[-1]:.0f} at minute {sized[-1]['seconds'] / 60:.0f} ({spread:+.1%} at most, "
          f"{'flat' if spread <= tolerance else 'NOT flat'} ±{tolerance:.0%}); the states "
          f"{states[0]:.0f} -> {states[-1]:.0f} MiB over the same minutes")


def hot_tier_verdict(rows: list[dict[str, float]], warmup_s: float, hot: int) -> None:
    """Print whether the hot tier was full when the warm-up ended: RSS judged while it fills is judged too early."""
    after = [row for row in rows if row["seconds"] >= warmup_s]
    if not after:
        return
    at_warmup, at_end = after[0]["hot_customers"], max(row["hot_customers"] for row in after)
    print(f"hot tier: {at_warmup:.0f} customers as objects at the end of the warm-up, at most {at_end:.0f} after, "
          f"of PERSO_STATE_CACHE_HOT {hot}: {'full' if at_warmup >= hot else 'still filling'} when judged; "
          f"{after[-1]['cached_customers']:.0f} customers cached at the end")


def collections_summary(counters: dict[str, float]) -> None:
    """Print the worker's full garbage collections as of its last sample (each pauses the batch it falls in)."""
    if (collections := full_collections_line(counters)) is not None:
        print(f"{collections} (the worker's figures at the last sample; PERSO_GC_FREEZE_SURVIVORS)")


def sized_row(row: dict[str, float]) -> bool:
    """Whether this sample also sized the customer states."""
    return not math.isnan(row.get("states_mib", math.nan))


def last_rss(rows: list[dict[str, float]]) -> float:
    return rows[-1]["rss_mib"]


if __name__ == "__main__":
    sys.exit(main())
