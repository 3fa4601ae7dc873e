"""HTTP endpoints on the worker, served by Faust's own web server (PERSO_WEB_PORT):

- `GET /health`   200 when batches complete and Redis answers, 503 while degraded (a batch failing and being
  retried, Redis unreachable), with the cause, the error, since when and the events waiting;
- `GET /metrics`  Prometheus text format;
- `GET /profiles/{customer_id}`  the stored profile and last offer (404 if unknown); the id is pseudonymised
  here when PERSO_PSEUDONYMISE_KEY is set, so callers use the customer's real id;
- `GET /experiments`  every experiment's report (arms, rates, lift against the holdout with intervals), as
  `perso experiments --json` prints it; `GET /experiments/{name}` one of them (404 if unknown).
"""

from __future__ import annotations

from typing import Any

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST

from streams.observability.experiments import experiment_summary
from streams.observability.telemetry import WorkerTelemetry
from streams.privacy import Pseudonymiser
from streams.storage.customer_store import RedisCustomerStore
from streams.storage.experiments import ExperimentStore


def register_views(app: faust.App, telemetry: WorkerTelemetry, store: RedisCustomerStore,
                   pseudonymiser: Pseudonymiser, experiments: ExperimentStore) -> None:
    @app.page("/health")
    async def health(web: View, request: Request) -> Response:
        snap = telemetry.snapshot()
        body: dict[str, Any] = {
            **telemetry.health_report(),
            "assigned_partitions": int(snap["assigned_partitions"]),
            "events_per_s": snap["events_per_s"],
            "accepted": int(snap["accepted"]),
            "uptime_s": round(snap["updated_at"] - snap["started_at"], 1),
        }
        return web.json(body, status=200 if body["status"] == "ok" else 503)

    @app.page("/metrics")
    async def metrics(web: View, request: Request) -> Response:
        return web.bytes(telemetry.prometheus(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/profiles/{customer_id}")
    async def profile(web: View, request: Request, customer_id: str) -> Response:
        stored_id = pseudonymiser.apply(customer_id)
        fields = await store.read_profile(stored_id)
        if not fields:
            return web.json({"error": "unknown customer", "customer_id": stored_id}, status=404)
        offer_fields = {k: v for k, v in fields.items() if k.startswith("last_offer")}
        return web.json({"customer_id": stored_id, "profile": fields, "last_offer": offer_fields or None})

    @app.page("/experiments")
    async def experiment_list(web: View, request: Request) -> Response:
        return web.json({"experiments": [await experiment_summary(experiments, config)
                                         for config in await experiments.all()]})

    @app.page("/experiments/{name}")
    async def experiment_one(web: View, request: Request, name: str) -> Response:
        config = await experiments.get(name)
        if config is None:
            return web.json({"error": "unknown experiment", "name": name}, status=404)
        return web.json(await experiment_summary(experiments, config))
