"""Experiments in Redis: their configuration (`experiments`, one JSON per name) and each arm's counters
(`experiment:{name}:arm:{arm}`, written by the workers' save script with the states they count).

At most one experiment runs at a time (a customer is in one arm); a stopped one keeps its counters, so its
report stays readable, and offers it decided keep converting until their window closes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from models.experiments.counts import arm_counts, ghost_arms
from models.experiments.report import ArmCounts
from schemas.experiments import ExperimentConfig
from streams.storage.keys import EXPERIMENTS_KEY, experiment_arm_key


class ExperimentError(ValueError):
    """A request the experiments' state refuses (a name taken, a second running experiment, an unknown name)."""


class ExperimentStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def all(self) -> list[ExperimentConfig]:
        """Every experiment, the most recently started first."""
        raw = await self.client.hgetall(EXPERIMENTS_KEY)
        configs = [ExperimentConfig.model_validate_json(value) for value in raw.values()]
        return sorted(configs, key=lambda c: c.started_at, reverse=True)

    async def get(self, name: str) -> ExperimentConfig | None:
        raw = await self.client.hget(EXPERIMENTS_KEY, name)
        return ExperimentConfig.model_validate_json(raw) if raw else None

    async def running(self) -> ExperimentConfig | None:
        return next((config for config in await self.all() if config.running), None)

    async def start(self, config: ExperimentConfig) -> None:
        """Store a new running experiment; refused while another runs or when the name was used before."""
        current = await self.running()
        if current is not None:
            raise ExperimentError(f"experiment {current.name!r} is running: stop it first "
                                  f"(perso experiment stop {current.name})")
        if not await self.client.hsetnx(EXPERIMENTS_KEY, config.name, config.model_dump_json()):
            raise ExperimentError(f"an experiment named {config.name!r} exists already (its report stays "
                                  f"readable): choose another name")

    async def stop(self, name: str, now: datetime | None = None) -> ExperimentConfig:
        config = await self.get(name)
        if config is None:
            raise ExperimentError(f"no experiment named {name!r}")
        if not config.running:
            raise ExperimentError(f"experiment {name!r} was stopped at {config.stopped_at}")
        stopped = config.model_copy(update={"stopped_at": now or datetime.now(UTC)})
        await self.client.hset(EXPERIMENTS_KEY, name, stopped.model_dump_json())
        return stopped

    async def counts(self, config: ExperimentConfig) -> tuple[list[ArmCounts], dict[str, ArmCounts]]:
        """Each arm's counters as the workers wrote them, with the arm's configured share, and the holdout's ghost
        offers per arm of another policy (models/experiments/counts.py)."""
        names = [arm.name for arm in config.arms] + ghost_arms(config)
        async with self.client.pipeline(transaction=True) as pipe:  # one consistent read of every arm
            for name in names:
                pipe.hgetall(experiment_arm_key(config.name, name))
            replies: list[dict[Any, Any]] = await pipe.execute()
        stored = dict(zip(names, replies, strict=True))
        return arm_counts(config, lambda name: stored.get(name, {}))
