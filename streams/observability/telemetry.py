"""What a worker reports about itself: one snapshot feeds the Redis stats hash (read by `perso status`),
the Prometheus `/metrics` endpoint and `/health`.

Fed by hooks, as Faust's sensors are: the batch counters and the health record are pipeline sensors, and the
models' figures come from `Personalizer.metrics()` (each learner's own, by name), so nothing here knows
which models run.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.observability.health import BatchHealth
from streams.worker.collector import GENERATIONS
from streams.worker.failures import classify, describe
from streams.worker.loop_stalls import LATE_AT_LEAST_MS
from streams.worker.sensors import STAGES, BatchCounters

# Events/s is averaged over this many seconds of ticks.
RATE_WINDOW_S = 10.0
COUNTERS = ("records", "accepted", "duplicates", "dead_letters", "offers", "batches", "undeliverable", "rescored")


ModelMetrics = Callable[[], dict[str, dict[str, float]]]


class WorkerTelemetry:
    def __init__(self, counters: BatchCounters, health: BatchHealth, model_metrics: ModelMetrics = dict,
                 cached_customers: Callable[[], int] = lambda: 0, events_waiting: Callable[[], int] = lambda: 0,
                 web_url: str | None = None, hot_customers: Callable[[], int] = lambda: 0,
                 gc_figures: Callable[[], dict[str, float]] = dict,
                 loop_figures: Callable[[], dict[str, float]] = dict) -> None:
        self.counters = counters
        self.health = health
        self.model_metrics = model_metrics
        self.cached_customers = cached_customers
        self.hot_customers = hot_customers  # of those cached, how many as objects (PERSO_STATE_CACHE_HOT at most)
        self.events_waiting = events_waiting
        self.gc_figures = gc_figures  # the garbage collector's pauses (streams/worker/collector.py)
        self.loop_figures = loop_figures  # how late the event loop ran (streams/worker/loop_stalls.py)
        # Where `perso status` can ask this worker directly when Redis refuses its stats writes.
        self.web_url = web_url
        self.started_at = time.time()
        self.checkpoint_saved_at: float | None = None
        self.assigned_partitions = 0
        self.revocations = 0  # rebalances that took this worker's partitions away (to give them back or not)
        # Set by the stats publisher: None while its writes succeed, else why the last one failed.
        self.stats_error: str | None = None
        self._stats_unreachable = False
        self._samples: deque[tuple[float, int]] = deque()

    def tick(self) -> None:
        """Called every second: keeps the samples the event rate is computed from."""
        now = time.monotonic()
        self._samples.append((now, self.counters.accepted))
        while self._samples and now - self._samples[0][0] > RATE_WINDOW_S:
            self._samples.popleft()

    def stats_written(self, error: BaseException | None) -> None:
        """The stats publisher's last write: it is also a Redis probe when no batch is running."""
        self.stats_error = describe(error) if error is not None else None
        self._stats_unreachable = error is not None and classify(error).cause == "redis_unreachable"

    @property
    def events_per_s(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    @property
    def redis_up(self) -> bool:
        current = self.health.current
        return not self._stats_unreachable and (current is None or current.failure.cause != "redis_unreachable")

    @property
    def healthy(self) -> bool:
        return self.health.ok and self.redis_up

    def health_report(self) -> dict[str, object]:
        """What `/health` answers: ok, or degraded with the failing batch's cause, error, since and waiting."""
        report: dict[str, object] = dict(self.health.report())
        if not self.redis_up:
            report["status"] = "degraded"
        report["redis"] = "up" if self.redis_up else "unreachable"
        report["events_waiting"] = self.events_waiting()
        return report

    def model_figures(self) -> dict[str, float]:
        """Each learner's figures as `{learner}_{figure}` (e.g. propensity_self_measured_roc_auc)."""
        return {f"{learner}_{name}": float(value) for learner, figures in self.model_metrics().items()
                for name, value in figures.items()}

    def snapshot(self) -> dict[str, float]:
        stats = self.counters
        values: dict[str, float] = {name: float(getattr(stats, name)) for name in COUNTERS}
        current = self.health.current
        values.update(
            events_per_s=round(self.events_per_s, 1),
            cached_customers=float(self.cached_customers()),
            hot_customers=float(self.hot_customers()),
            assigned_partitions=float(self.assigned_partitions),
            revocations=float(self.revocations),
            redis_up=float(self.redis_up),
            healthy=float(self.healthy),
            failing_since=current.since if current is not None else 0.0,
            events_waiting=float(self.events_waiting()),
            last_offer_latency_s=stats.last_offer_latency_s,
            started_at=self.started_at,
            updated_at=time.time(),
        )
        values.update(self.model_figures())
        values.update(self.gc_figures())
        values.update(self.loop_figures())
        for stage in STAGES:
            values[f"{stage}_seconds"] = round(stats.stage_seconds[stage], 6)
        if self.checkpoint_saved_at is not None:
            values["checkpoint_saved_at"] = self.checkpoint_saved_at
        return values

    def stats_hash(self) -> dict[str, float | bytes]:
        """The snapshot plus the JSON fields, as written to the worker's stats hash in Redis."""
        fields: dict[str, float | bytes] = dict(self.snapshot())
        fields["dead_letter_reasons"] = orjson.dumps(self.counters.dead_letter_reasons)
        fields["batch_failures"] = orjson.dumps(self.health.failures_by_cause)
        fields["health"] = orjson.dumps(self.health_report())
        if self.web_url:
            fields["web_url"] = self.web_url.encode()
        return fields

    def prometheus(self) -> bytes:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_SnapshotCollector(self))
        return generate_latest(registry)


class _SnapshotCollector(Collector):
    def __init__(self, telemetry: WorkerTelemetry) -> None:
        self.telemetry = telemetry

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        snap = self.telemetry.snapshot()
        help_for = {
            "records": "Input records consumed", "accepted": "Events applied to profiles (exactly once)",
            "duplicates": "Events skipped because their event_id was already applied",
            "offers": "Offers published", "batches": "Micro-batches handled",
            "undeliverable": "Dead letters the broker refused even without their payload (logged, not published)",
            "rescored": "Customers re-scored without an event, as their wake time passed in stream time",
        }
        for name, text in help_for.items():
            yield CounterMetricFamily(f"perso_{name}", text, value=snap[name])
        dead = CounterMetricFamily("perso_dead_letters", "Records sent to the dead-letter topic", labels=["reason"])
        for reason, count in sorted(self.telemetry.counters.dead_letter_reasons.items()):
            dead.add_metric([reason], count)
        yield dead
        failures = CounterMetricFamily("perso_batch_failures", "Failed attempts at a batch stage, by cause "
                                       "(retried while the cause can heal)", labels=["cause"])
        for cause, count in sorted(self.telemetry.health.failures_by_cause.items()):
            failures.add_metric([cause], count)
        yield failures
        stages = CounterMetricFamily("perso_batch_stage_seconds", "Time spent in each stage of the micro-batches "
                                     "(load: validate and read Redis; publish: until the broker acks)",
                                     labels=["stage"])
        for stage in STAGES:
            stages.add_metric([stage], snap[f"{stage}_seconds"])
        yield stages
        yield from _gc_metrics(snap)
        yield from _loop_metrics(snap)
        yield CounterMetricFamily("perso_partition_revocations", "Rebalances that took this worker's partitions "
                                  "away (its customers are re-read from Redis after each)", value=snap["revocations"])
        current = self.telemetry.health.current
        yield GaugeMetricFamily("perso_batch_failing_seconds", "Seconds the current batch has been failing "
                                "(0 while batches complete): alert when above a minute",
                                value=snap["updated_at"] - current.since if current is not None else 0.0)
        gauges = {
            "healthy": ("healthy", "1 when batches complete and Redis answers, 0 while degraded"),
            "events_waiting": ("events_waiting", "Input events on this worker's partitions not yet committed"),
            "events_per_second": ("events_per_s", f"Events applied per second over the last {RATE_WINDOW_S:.0f}s"),
            "cached_customers": ("cached_customers", "Customer states held in worker memory"),
            "hot_customers": ("hot_customers", "Of the cached customer states, those held as objects (the rest "
                              "compressed); at most PERSO_STATE_CACHE_HOT"),
            "assigned_partitions": ("assigned_partitions", "Input partitions assigned to this worker"),
            "redis_up": ("redis_up", "1 when the last Redis operation succeeded"),
            "last_offer_latency_seconds": ("last_offer_latency_s", "Event time to offer decision, last batch"),
        }
        for metric, (key, text) in gauges.items():
            yield GaugeMetricFamily(f"perso_{metric}", text, value=snap[key])
        for name, value in self.telemetry.model_figures().items():
            learner = name.split("_", 1)[0]
            yield GaugeMetricFamily(f"perso_{name}", f"A figure the {learner} learner reports about itself "
                                    "(see docs/model-quality.md for what is measured honestly)", value=value)
        if "checkpoint_saved_at" in snap:
            yield GaugeMetricFamily("perso_checkpoint_age_seconds", "Seconds since the last model checkpoint",
                                    value=snap["updated_at"] - snap["checkpoint_saved_at"])


def _gc_metrics(snap: dict[str, float]) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
    """The garbage collector's figures, when the worker reports them (a full one pauses the batch it falls in)."""
    if "gc_collections_gen2" not in snap:
        return
    collections = CounterMetricFamily("perso_gc_collections", "Garbage collections, by generation (2: full)",
                                      labels=["generation"])
    paused = CounterMetricFamily("perso_gc_pause_seconds", "Seconds the worker was paused by garbage collections, "
                                 "by generation", labels=["generation"])
    longest = GaugeMetricFamily("perso_gc_longest_pause_seconds", "The longest garbage-collection pause since the "
                                "worker started, by generation", labels=["generation"])
    for generation in GENERATIONS:
        label = [str(generation)]
        collections.add_metric(label, snap[f"gc_collections_gen{generation}"])
        paused.add_metric(label, snap[f"gc_pause_seconds_gen{generation}"])
        longest.add_metric(label, snap[f"gc_longest_pause_ms_gen{generation}"] / 1000)
    yield collections
    yield paused
    yield longest
    yield GaugeMetricFamily("perso_gc_frozen_objects", "Objects moved out of every later collection (gc.freeze: "
                            "after start and, with PERSO_GC_FREEZE_SURVIVORS, after each full collection)",
                            value=snap["gc_frozen_objects"])


def _loop_metrics(snap: dict[str, float]) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
    """The event loop's stalls (streams/worker/loop_stalls.py), when the sensor runs."""
    if "loop_probes" not in snap:
        return
    yield CounterMetricFamily("perso_loop_stalls", "Times the event loop went a second or more without a turn "
                              "(offers, heartbeats and the web server waited)", value=snap["loop_stalls"])
    yield CounterMetricFamily("perso_loop_late_seconds", "Seconds the event loop's probes woke late, in all",
                              value=snap["loop_late_seconds"])
    late = CounterMetricFamily("perso_loop_late_probes", "Probes of the event loop (one every 0.1 s) that woke at "
                               "least this late", labels=["at_least_seconds"])
    for ms in LATE_AT_LEAST_MS:
        late.add_metric([f"{ms / 1000:g}"], snap[f"loop_late_{ms}ms"])
    yield late
    yield GaugeMetricFamily("perso_loop_longest_stall_seconds", "The longest the event loop went without a turn "
                            "since the worker started", value=snap["loop_longest_stall_ms"] / 1000)
