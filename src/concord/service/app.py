"""The service: REST API (OpenAPI at /docs), dashboard and scheduler in one process.

``create_app(config)`` builds it over the hub named by the configuration. The scheduler
starts and stops with the application (FastAPI lifespan), so tests can build an app with
``start_scheduler=False`` and drive the scheduler themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from fastapi.staticfiles import StaticFiles

from concord.hub.store import Hub
from concord.model import ModelError
from concord.service import metrics
from concord.service.api import conflicts, links, records
from concord.service.api.refusal import model_error_handler
from concord.service.auth import Principal, TokenVerifier
from concord.service.deps import ServiceState, require, state
from concord.service.scheduler import Scheduler, SyncFn

HERE = Path(__file__).parent

DESCRIPTION = """Concord's online copy of the practice's records, and control of its links.

Authenticate with `Authorization: Bearer <token>`; create tokens with `concord token create`.
Scopes: `records:read`, `records:write`, `sync:run` (sync the client list, or one record),
`admin` (everything: activate, pause, resume, and sync every entity type).
"""


def config_links(config: Any) -> dict[str, Any]:
    links_ = getattr(config, "links", None) or {}
    return dict(links_)


def config_hub(config: Any) -> Hub:
    hub_cfg = getattr(config, "hub", None)
    url = getattr(hub_cfg, "url", hub_cfg) or "sqlite:///concord.db"
    tenant = getattr(config, "tenant", None) or getattr(hub_cfg, "tenant", None) or "default"
    return Hub(str(url), str(tenant))


def create_app(config: Any = None, *, hub: Hub | None = None, sync_fn: SyncFn | None = None,
               start_scheduler: bool = True, push_on_write: bool = True,
               watch: bool = True, isolate: bool = True) -> FastAPI:
    hub = hub or config_hub(config)
    link_cfgs = config_links(config)
    scheduler = Scheduler(hub, link_cfgs, sync_fn, watch=watch, isolate=isolate)
    st = ServiceState(hub=hub, links=link_cfgs, scheduler=scheduler,
                      verifier=TokenVerifier(hub), push_on_write=push_on_write)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if start_scheduler:
            scheduler.start()
        try:
            yield
        finally:
            scheduler.stop()

    app = FastAPI(title="Concord", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.concord = st
    # A write whose fields do not fit the model: 422 naming the field and the fix.
    app.add_exception_handler(ModelError, model_error_handler)
    app.include_router(records.router)
    app.include_router(links.router)
    app.include_router(conflicts.router)

    @app.get("/metrics", response_class=PlainTextResponse, tags=["metrics"],
             summary="Prometheus metrics (admin)")
    def get_metrics(request: Request, _p: Principal = require("admin")) -> str:
        return metrics.render(state(request))

    from concord.service import dashboard

    app.include_router(dashboard.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app


__all__ = ["ServiceState", "create_app"]
