"""The dashboard's time series: every PERSO_WEB_HISTORY_INTERVAL_S one point (rates, lag, dead letters, offers by
policy, the learners' self-measured figures and the latest experiment's per-arm conversion and lift) is pushed on a
bounded Redis list. One worker records each point: whoever takes the interval's lock first, so several workers
do not write the same point twice and the series survives any one of them.

Counters are kept cumulative (as the workers report them) and turned into rates by the page, from consecutive
points; a worker restart shows as a drop, which the page reads as no progress rather than a negative rate.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
import redis.asyncio as aioredis

from streams.observability.dashboard.fleet import Fleet, read_fleet
from streams.observability.experiments import experiment_summary
from streams.storage import keys
from streams.storage.experiments import ExperimentStore

log = logging.getLogger(__name__)

LEARNER_FIGURES = ("self_measured_roc_auc", "self_measured_log_loss", "labelled")


async def current_point(client: aioredis.Redis, app_id: str, default_policy: str,
                        fleet: Fleet | None = None) -> dict[str, Any]:
    """The figures as of now, in the shape of a point of the series."""
    fleet = fleet if fleet is not None else await read_fleet(client, app_id)
    reasons = fleet.dead_letters()
    point: dict[str, Any] = {
        "t": round(time.time(), 3), "workers_alive": len(fleet.alive), "workers_known": len(fleet.workers),
        "events_per_s": round(fleet.total("events_per_s"), 1), "accepted": fleet.total("accepted"),
        "records": fleet.total("records"), "offers": fleet.total("offers"),
        "dead_letters": sum(reasons.values()), "dead_letter_reasons": reasons,
        "lag": fleet.total("events_waiting"),
    }
    for learner in ("propensity", "churn"):
        for figure in LEARNER_FIGURES:
            value = fleet.mean(f"{learner}_{figure}")
            point[f"{learner}_{figure}"] = round(value, 5) if value is not None else None
    point.update(await _experiment_figures(ExperimentStore(client)))
    arms = point.get("arms") or []
    if point.get("experiment_running"):
        # An arm's decided offers, by its policy (the holdout's are decided and never sent).
        by_policy: dict[str, float] = {}
        for arm in arms:
            by_policy[arm["policy"]] = by_policy.get(arm["policy"], 0.0) + arm["offers"]
        point["offers_by_policy"] = by_policy
    else:
        point["offers_by_policy"] = {default_policy: point["offers"]}
    return point


async def _experiment_figures(store: ExperimentStore) -> dict[str, Any]:
    """The running experiment (else the latest one): each arm's conversion and its lift over the reference."""
    configs = await store.all()
    config = next((c for c in configs if c.running), configs[0] if configs else None)
    if config is None:
        return {"experiment": None, "experiment_running": False, "arms": []}
    report = (await experiment_summary(store, config, text=False))["report"]
    arms = []
    for arm in report["arms"]:
        lift = arm.get("conversion_lift") if arm.get("offers_comparable", True) else arm.get("buyer_lift")
        arms.append({"arm": arm["arm"], "policy": arm["policy"], "customers": arm["customers"],
                     "offers": arm["offers"], "published": arm["published"],
                     "conversion_rate": arm["conversion_rate"], "conversion_interval": arm["conversion_interval"],
                     "revenue_per_customer": arm["revenue_per_customer"],
                     "lift": lift.get("estimate") if lift else None,
                     "lift_interval": lift.get("interval") if lift else None,
                     "lift_kind": "conversion" if arm.get("offers_comparable", True) else "buyers"})
    return {"experiment": config.name, "experiment_running": config.running, "srm_warning": report["srm_warning"],
            "reference": report["reference"], "arms": arms}


class HistoryRecorder:
    """Records one point per interval (called by a Faust timer on every worker; one of them wins each interval)."""

    def __init__(self, client: aioredis.Redis, app_id: str, default_policy: str, interval_s: float,
                 max_points: int) -> None:
        self.client = client
        self.app_id = app_id
        self.default_policy = default_policy
        self.interval_s = interval_s
        self.max_points = max_points
        self.key = keys.dashboard_history_key(app_id)

    async def record(self) -> bool:
        """Push a point unless another worker did this interval; False when it was not this worker's turn or Redis
        refused (the dashboard is never a reason for the worker to fail)."""
        try:
            lock_ms = max(1, int(self.interval_s * 900))  # a little under the interval: the next tick may take it
            if not await self.client.set(keys.dashboard_sampler_key(self.app_id), b"1", nx=True, px=lock_ms):
                return False
            point = await current_point(self.client, self.app_id, self.default_policy)
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.lpush(self.key, orjson.dumps(point))
                pipe.ltrim(self.key, 0, self.max_points - 1)
                await pipe.execute()
            return True
        except Exception as error:
            log.warning("dashboard history point not recorded: %s", error)
            return False

    async def points(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The recorded points, oldest first."""
        raw = await self.client.lrange(self.key, 0, (limit or self.max_points) - 1)
        return [orjson.loads(item) for item in reversed(raw)]
