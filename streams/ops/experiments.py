"""`perso experiment start|stop` and `perso experiments`: experiments in Redis, and their reports."""

from __future__ import annotations

from typing import Any

from models.experiments.configure import new_experiment
from schemas.experiments import ExperimentConfig
from streams.observability.experiments import experiment_summary
from streams.security import redis_async
from streams.settings import Settings
from streams.storage.experiments import ExperimentError, ExperimentStore


async def start_experiment(settings: Settings, name: str, arms: str, salt: str | None = None,
                           rules: dict[str, str] | None = None) -> ExperimentConfig:
    """Store a new running experiment (raises ValueError with what is wrong: arms, policies, an arm's rules, a name
    taken, another experiment running). `rules`: an arm's own rules by arm name. Running workers pick it up
    within PERSO_EXPERIMENT_POLL_S."""
    config = new_experiment(name, arms, holdout_policy=settings.models.policy, plugins=settings.models.plugins,
                            salt=salt, rules=rules)
    client = redis_async(settings.redis)
    try:
        await ExperimentStore(client).start(config)
    finally:
        await client.aclose()
    return config


async def stop_experiment(settings: Settings, name: str) -> ExperimentConfig:
    client = redis_async(settings.redis)
    try:
        return await ExperimentStore(client).stop(name)
    finally:
        await client.aclose()


async def experiment_summaries(settings: Settings, name: str | None = None) -> list[dict[str, Any]]:
    """Every experiment's configuration and report (or the one named), the most recent first."""
    client = redis_async(settings.redis)
    try:
        store = ExperimentStore(client)
        configs = await store.all()
        if name is not None:
            configs = [config for config in configs if config.name == name]
            if not configs:
                raise ExperimentError(f"no experiment named {name!r}")
        return [await experiment_summary(store, config) for config in configs]
    finally:
        await client.aclose()
