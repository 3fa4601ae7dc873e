"""An experiment's report as the CLI and the worker's web server show it: configuration plus the statistics of
its arms (models/experiments/report.py), from the counters the workers keep in Redis."""

from __future__ import annotations

from typing import Any

from models.experiments.report import experiment_report, format_report
from schemas.experiments import ExperimentConfig
from streams.storage.experiments import ExperimentStore


async def experiment_summary(store: ExperimentStore, config: ExperimentConfig, text: bool = True) -> dict[str, Any]:
    """Configuration, status and report of one experiment (`text`: the report as `perso experiments` prints it)."""
    arms, ghosts = await store.counts(config)
    report = experiment_report(config.name, arms, holdout_policy=config.holdout_policy, offer_references=ghosts)
    return {"name": config.name, "status": "running" if config.running else "stopped",
            "started_at": config.started_at.isoformat(),
            "stopped_at": config.stopped_at.isoformat() if config.stopped_at else None,
            "arms": [arm.model_dump() for arm in config.arms], "report": report.to_dict(),
            **({"text": format_report(report)} if text else {})}
