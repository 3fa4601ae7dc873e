"""The dashboard's routes on the worker's Faust web server: pages, static files, login, and the JSON endpoints
the pages poll. Access control is the middleware's (streams/observability/auth.py); reads of a customer are
audit-logged here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import faust
from faust.web import Request, Response, View

from models.personalizer import Personalizer
from streams.access import authenticate
from streams.observability.audit import AuditLog
from streams.observability.auth import COOKIE, AccessPolicy, principal
from streams.observability.dashboard import customers, insight
from streams.observability.dashboard.fleet import read_fleet
from streams.observability.dashboard.history import HistoryRecorder, current_point
from streams.observability.dashboard.pages import CSP, PAGES, login_page, safe_next, shell, static_file
from streams.observability.experiments import experiment_summary
from streams.privacy import Pseudonymiser
from streams.storage.customer_store import RedisCustomerStore
from streams.storage.experiments import ExperimentStore

PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer"}


@dataclass
class DashboardContext:
    """What the dashboard reads: this worker's models, the stores in Redis, the access policy and the audit log."""

    app_id: str
    default_policy: str
    personalizer: Personalizer
    store: RedisCustomerStore
    experiments: ExperimentStore
    pseudonymiser: Pseudonymiser
    access: AccessPolicy
    audit: AuditLog
    history: HistoryRecorder


def register_dashboard(app: faust.App, ctx: DashboardContext, history_interval_s: float) -> None:
    client = ctx.store.client
    sample = insight.ProfileSample(client)

    @app.timer(history_interval_s)
    async def record_dashboard_history() -> None:
        await ctx.history.record()

    @app.page("/dashboard/login")
    class Login(View):
        async def get(self, request: Request) -> Response:
            then = request.query.get("next")
            return self.html(login_page(then=then))

        async def post(self, request: Request) -> Response:
            form = parse_qs((await request.read()).decode(errors="replace"))
            token = (form.get("token") or [""])[0]
            target = safe_next((form.get("next") or [""])[0])
            if authenticate(ctx.access.entries, token) is None:
                return self.html(login_page("that token is not valid here", then=target), status=401)
            response = self.html("", status=303, headers={"Location": target})
            ctx.access.set_cookie(response, token)  # type: ignore[arg-type]
            return response

    @app.page("/dashboard/logout")
    async def logout(web: View, request: Request) -> Response:
        response = web.html("", status=303, headers={"Location": "/dashboard/login"})
        response.del_cookie(COOKIE, path="/")  # type: ignore[attr-defined]
        return response

    @app.page("/dashboard")
    async def index(web: View, request: Request) -> Response:
        return web.html("", status=303, headers={"Location": "/dashboard/overview"})

    @app.page("/dashboard/static/{name}")
    async def static(web: View, request: Request, name: str) -> Response:
        found = static_file(name)
        if found is None:
            return web.json({"error": "not found"}, status=404)
        body, content_type = found
        return web.bytes(body, content_type=content_type,
                         headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"})

    @app.page("/dashboard/api/whoami")
    async def whoami(web: View, request: Request) -> Response:
        who = principal(request)
        return web.json({"name": who.name if who else None, "role": who.role if who else None})

    @app.page("/dashboard/api/overview")
    async def overview(web: View, request: Request) -> Response:
        fleet = await read_fleet(client, ctx.app_id)
        now = await current_point(client, ctx.app_id, ctx.default_policy, fleet)
        workers = [{"name": w["name"], "age_s": w["age_s"], "alive": w in fleet.alive, "health": w["health"],
                    "events_per_s": w["values"].get("events_per_s", 0.0),
                    "partitions": w["values"].get("assigned_partitions", 0.0),
                    "waiting": w["values"].get("events_waiting", 0.0)} for w in fleet.workers]
        return web.json({"now": now, "history": await ctx.history.points(), "workers": workers,
                         "interval_s": history_interval_s})

    @app.page("/dashboard/api/segments")
    async def segments(web: View, request: Request) -> Response:
        rows = await sample.rows()
        fleet = await read_fleet(client, ctx.app_id)
        return web.json(insight.segments_view(ctx.personalizer, rows, fleet.prefixed("rfm_group_"),
                                              sample.complete))

    @app.page("/dashboard/api/experiments")
    async def experiments(web: View, request: Request) -> Response:
        summaries = [await experiment_summary(ctx.experiments, config, text=False)
                     for config in await ctx.experiments.all()]
        history = [{"t": p["t"], "experiment": p.get("experiment"), "arms": p.get("arms", []),
                    "srm_warning": p.get("srm_warning")} for p in await ctx.history.points()]
        return web.json({"experiments": summaries, "history": history})

    @app.page("/dashboard/api/models")
    async def models(web: View, request: Request) -> Response:
        body: dict[str, Any] = insight.models_view(ctx.personalizer, await sample.rows())
        fields = [f"{learner}_{figure}" for learner in ("propensity", "churn")
                  for figure in ("self_measured_roc_auc", "self_measured_log_loss", "labelled")]
        body["history"] = [{"t": p["t"], **{f: p.get(f) for f in fields}} for p in await ctx.history.points()]
        return web.json(body)

    @app.page("/dashboard/api/customers")
    async def search(web: View, request: Request) -> Response:
        query = request.query.get("q", "")
        found = await customers.search(client, ctx.pseudonymiser, query)
        await ctx.audit.record(principal(request), "search customers", detail=f"query={query!r} found={len(found)}")
        return web.json({"query": query, "customers": found})

    @app.page("/dashboard/api/customers/{customer_id}")
    async def customer(web: View, request: Request, customer_id: str) -> Response:
        view = await customers.customer_view(ctx.store, ctx.pseudonymiser, customer_id)
        stored = ctx.pseudonymiser.apply(customer_id)
        await ctx.audit.record(principal(request), "read customer page", customer=stored,
                               detail="" if view else "unknown")
        if view is None:
            return web.json({"error": "unknown customer", "customer_id": stored}, status=404)
        return web.json(view)

    for page in PAGES:
        _register_page(app, page)


def _register_page(app: faust.App, page: str) -> None:
    async def serve(web: View, request: Request) -> Response:
        return web.html(shell(page), headers=dict(PAGE_HEADERS))

    serve.__name__ = f"dashboard_{page}"
    app.page(f"/dashboard/{page}")(serve)
