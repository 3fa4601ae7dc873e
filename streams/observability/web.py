"""HTTP endpoints on the worker, served by Faust's own web server (PERSO_WEB_PORT), behind the access control of
streams/observability/auth.py (every path but /health needs a token; docs/dashboard.md):

- `GET /health`   200 when batches complete and Redis answers, 503 while degraded (a batch failing and being
  retried, Redis unreachable), with the cause, the error, since when and the events waiting; open to anyone;
- `GET /metrics`  Prometheus text format (open without a token only with PERSO_WEB_METRICS_OPEN);
- `GET /profiles/{customer_id}`  the stored profile and last offer (404 if unknown); the id is pseudonymised
  here when PERSO_PSEUDONYMISE_KEY is set, so callers use the customer's real id; audit-logged;
- `GET /experiments`  every experiment's report (arms, rates, lift against the holdout with intervals), as
  `perso experiments --json` prints it; `GET /experiments/{name}` one of them (404 if unknown);
- operators only: `POST /experiments` (JSON `{"name": ..., "arms": "holdout:10,nbo:90", "salt": ...}`) starts an
  experiment, `POST /experiments/{name}/stop` stops it, `DELETE /profiles/{customer_id}` forgets a customer
  (as `perso experiment start|stop` and `perso forget` do);
- `/dashboard/...`  the dashboard (streams/observability/dashboard/).
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

import faust
import orjson
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST

from models.experiments.configure import new_experiment
from models.personalizer import Personalizer
from streams.access import parse_tokens
from streams.observability.audit import AuditLog
from streams.observability.auth import AccessPolicy, principal
from streams.observability.dashboard.history import HistoryRecorder
from streams.observability.dashboard.views import DashboardContext, register_dashboard
from streams.observability.experiments import experiment_summary
from streams.observability.telemetry import WorkerTelemetry
from streams.privacy import Pseudonymiser
from streams.settings import Settings, WorkerSettings
from streams.storage.customer_store import RedisCustomerStore, forget_customer_everywhere
from streams.storage.experiments import ExperimentError, ExperimentStore

log = logging.getLogger(__name__)


def access_policy(worker: WorkerSettings) -> AccessPolicy:
    return AccessPolicy(parse_tokens(worker.web_tokens), metrics_open=worker.web_metrics_open,
                        secure_cookie=worker.web_tls_certfile is not None)


def tls_context(worker: WorkerSettings) -> ssl.SSLContext | None:
    """The web server's TLS context from PERSO_WEB_TLS_CERTFILE/KEYFILE (None: plain HTTP)."""
    if worker.web_tls_certfile is None or worker.web_tls_keyfile is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(worker.web_tls_certfile), str(worker.web_tls_keyfile))
    return context


def web_server_options(worker: WorkerSettings) -> dict[str, Any]:
    """faust.App keyword arguments of the web server: the access-control middleware and TLS."""
    policy = access_policy(worker)
    if worker.web_enabled and not policy.entries:
        log.warning("no web tokens configured (PERSO_WEB_TOKENS): every HTTP path but /health answers 401; "
                    "`perso web-token` makes one")
    return {"web_application_options": {"middlewares": [policy.middleware()]},
            "web_ssl_context": tls_context(worker)}


def register_views(app: faust.App, telemetry: WorkerTelemetry, store: RedisCustomerStore,
                   pseudonymiser: Pseudonymiser, experiments: ExperimentStore, settings: Settings,
                   personalizer: Personalizer) -> None:
    client = store.client
    audit = AuditLog(client, settings.app_id)
    models = settings.models

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
    class Profile(View):
        async def get(self, request: Request, customer_id: str) -> Response:
            stored_id = pseudonymiser.apply(customer_id)
            fields = await store.read_profile(stored_id)
            await audit.record(principal(request), "read profile", customer=stored_id,
                               detail="" if fields else "unknown")
            if not fields:
                return self.json({"error": "unknown customer", "customer_id": stored_id}, status=404)
            offer_fields = {k: v for k, v in fields.items() if k.startswith("last_offer")}
            return self.json({"customer_id": stored_id, "profile": fields, "last_offer": offer_fields or None})

        async def delete(self, request: Request, customer_id: str) -> Response:
            """Forget the customer, as `perso forget` does: delete the keys, tell running workers to drop theirs."""
            stored_id = pseudonymiser.apply(customer_id)
            deleted, notified = await forget_customer_everywhere(client, settings.app_id, stored_id)
            await audit.record(principal(request), "forget customer", customer=stored_id, detail=f"keys={deleted}")
            return self.json({"customer_id": stored_id, "keys_deleted": deleted, "workers_notified": notified})

    @app.page("/experiments")
    class Experiments(View):
        async def get(self, request: Request) -> Response:
            return self.json({"experiments": [await experiment_summary(experiments, config)
                                              for config in await experiments.all()]})

        async def post(self, request: Request) -> Response:
            try:
                body = orjson.loads(await request.read())
                rules = body.get("rules")
                if rules is not None and not (isinstance(rules, dict) and all(
                        isinstance(v, str) for v in rules.values())):
                    raise ValueError('"rules" is an object of each arm\'s rules by arm name, e.g. '
                                     '{"nbo": "exclude: item.category == \\"alcohol\\""}')
                config = new_experiment(str(body["name"]), str(body["arms"]), holdout_policy=models.policy,
                                        plugins=models.plugins, salt=body.get("salt"), rules=rules)
                await experiments.start(config)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:  # ExperimentError too
                return self.json({"error": f"experiment not started: {error}"}, status=400)
            await audit.record(principal(request), "start experiment", detail=f"name={config.name} arms={body['arms']}")
            return self.json(await experiment_summary(experiments, config), status=201)

    @app.page("/experiments/{name}")
    async def experiment_one(web: View, request: Request, name: str) -> Response:
        config = await experiments.get(name)
        if config is None:
            return web.json({"error": "unknown experiment", "name": name}, status=404)
        return web.json(await experiment_summary(experiments, config))

    @app.page("/experiments/{name}/stop")
    class StopExperiment(View):
        async def post(self, request: Request, name: str) -> Response:
            try:
                config = await experiments.stop(name)
            except ExperimentError as error:
                return self.json({"error": str(error)}, status=404 if "no experiment" in str(error) else 409)
            await audit.record(principal(request), "stop experiment", detail=f"name={name}")
            return self.json(await experiment_summary(experiments, config))

    history = HistoryRecorder(client, settings.app_id, models.policy, settings.worker.web_history_interval_s,
                              settings.worker.web_history_points)
    register_dashboard(app, DashboardContext(settings.app_id, models.policy, personalizer, store, experiments,
                                             pseudonymiser, access_policy(settings.worker), audit, history),
                       settings.worker.web_history_interval_s)
