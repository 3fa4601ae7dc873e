"""What a worker reports about itself: one snapshot feeds the Redis stats hash (read by `perso status`),
the Prometheus `/metrics` endpoint and `/health`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.pipeline import STAGES, BatchPipeline
from streams.profile_store import ProfileStore

# Events/s is averaged over this many seconds of ticks.
RATE_WINDOW_S = 10.0
COUNTERS = ("records", "accepted", "duplicates", "dead_letters", "offers", "batches")


class WorkerTelemetry:
    def __init__(self, pipeline: BatchPipeline, store: ProfileStore) -> None:
        self.pipeline = pipeline
        self.store = store
        self.started_at = time.time()
        self.checkpoint_saved_at: float | None = None
        self.assigned_partitions = 0
        self._samples: deque[tuple[float, int]] = deque()

    def tick(self) -> None:
        """Called every second: keeps the samples the event rate is computed from."""
        now = time.monotonic()
        self._samples.append((now, self.pipeline.stats.accepted))
        while self._samples and now - self._samples[0][0] > RATE_WINDOW_S:
            self._samples.popleft()

    @property
    def events_per_s(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    @property
    def redis_up(self) -> bool:
        return self.store.unavailable_since is None

    def snapshot(self) -> dict[str, float]:
        stats = self.pipeline.stats
        values: dict[str, float] = {name: float(getattr(stats, name)) for name in COUNTERS}
        propensity = self.pipeline.personalizer.propensity.metrics()
        values.update(
            events_per_s=round(self.events_per_s, 1),
            cached_customers=float(len(self.pipeline.cache)),
            assigned_partitions=float(self.assigned_partitions),
            redis_up=float(self.redis_up),
            last_offer_latency_s=stats.last_offer_latency_s,
            propensity_roc_auc=propensity["roc_auc"],
            propensity_log_loss=propensity["log_loss"],
            propensity_labelled=propensity["labelled"],
            segments=float(self.pipeline.personalizer.segments.n_segments),
            items_known=float(len(self.pipeline.personalizer.items.info)),
            started_at=self.started_at,
            updated_at=time.time(),
        )
        for stage in STAGES:
            values[f"{stage}_seconds"] = round(stats.stage_seconds[stage], 6)
        if self.checkpoint_saved_at is not None:
            values["checkpoint_saved_at"] = self.checkpoint_saved_at
        return values

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
        }
        for name, text in help_for.items():
            yield CounterMetricFamily(f"perso_{name}", text, value=snap[name])
        dead = CounterMetricFamily("perso_dead_letters", "Records sent to the dead-letter topic", labels=["reason"])
        for reason, count in sorted(self.telemetry.pipeline.stats.dead_letter_reasons.items()):
            dead.add_metric([reason], count)
        yield dead
        stages = CounterMetricFamily("perso_batch_stage_seconds", "Time spent in each stage of the micro-batches "
                                     "(load: validate and read Redis; publish: until the broker acks)",
                                     labels=["stage"])
        for stage in STAGES:
            stages.add_metric([stage], snap[f"{stage}_seconds"])
        yield stages
        gauges = {
            "events_per_second": ("events_per_s", f"Events applied per second over the last {RATE_WINDOW_S:.0f}s"),
            "cached_customers": ("cached_customers", "Customer states held in worker memory"),
            "assigned_partitions": ("assigned_partitions", "Input partitions assigned to this worker"),
            "redis_up": ("redis_up", "1 when the last Redis operation succeeded"),
            "last_offer_latency_seconds": ("last_offer_latency_s", "Event time to offer decision, last batch"),
            "propensity_roc_auc": ("propensity_roc_auc", "Progressive ROC AUC of the propensity model"),
            "propensity_log_loss": ("propensity_log_loss", "Progressive log loss of the propensity model"),
            "items_known": ("items_known", "Items tracked by the co-occurrence model"),
        }
        for metric, (key, text) in gauges.items():
            yield GaugeMetricFamily(f"perso_{metric}", text, value=snap[key])
        if "checkpoint_saved_at" in snap:
            yield GaugeMetricFamily("perso_checkpoint_age_seconds", "Seconds since the last model checkpoint",
                                    value=snap["updated_at"] - snap["checkpoint_saved_at"])
