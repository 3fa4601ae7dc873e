"""`perso experiment start|stop` and `perso experiments`: experiments in Redis, and their reports."""

from __future__ import annotations

from typing import Any

from models.experiments.running import check_policies
from models.personalizer import import_plugins
from models.rules import arm_rules
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
    import_plugins(settings.models.plugins)  # policies that plug-ins register are valid arm policies too
    config = ExperimentConfig.start(name, arms, salt=salt, holdout_policy=settings.models.policy, rules=rules)
    check_policies(config)
    arm_rules(config)  # a rule that does not compile is refused here, not by every worker
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
