"""The HTTP API: ``create_app()`` builds it (uvicorn: ``palier.api.app:create_app --factory``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
from alembic.runtime.migration import MigrationContext
from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse

from palier import __version__, web
from palier.api import openapi, problems
from palier.api.body_limit import LimitBodySize
from palier.api.deps import no_nul_character
from palier.api.ratelimit import RateLimiter
from palier.api.request_ids import RequestIds
from palier.api.routes import events, members, outbox, programs, rewards, rules, status
from palier.clock import Clock, SystemClock
from palier.config import Settings, load_settings
from palier.db import Database, make_database, migrate
from palier.errors import PalierError

DESCRIPTION = """Palier is an open-source loyalty engine. Send purchases and returns from every channel,
read balances and history, and manage members. Authenticate with an API key:
`Authorization: Bearer key_….secret`. Every write that shows the `Idempotency-Key` header honours it:
a retry with the same key gets the first answer. Errors are `application/problem+json` with a stable
`code` and the offending `field`."""


# Requests run in a worker's thread pool, each holding at most one pooled connection at a time: no more
# threads than pooled connections, or the pool opens extra connections under load and closes them at once
# (a new PostgreSQL backend per request), and threads fighting for one core's worth of Python slow every
# request. Waiting requests queue in the event loop, where they cost nothing.
THREADS = 10


@asynccontextmanager
async def _threads_as_pooled_connections(_app: FastAPI) -> AsyncIterator[None]:
    anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
    yield


def _not_servable(db: Database) -> PalierError | None:
    with db.read() as conn:
        return migrate.not_servable(MigrationContext.configure(conn).get_current_revision())


def create_app(settings: Settings | None = None, *, db: Database | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or load_settings()
    app = FastAPI(
        dependencies=[Depends(no_nul_character)],
        lifespan=_threads_as_pooled_connections,
        title="Palier",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db or make_database(settings.database_url, pool_size=THREADS)
    app.state.clock = clock or SystemClock()
    # The app's clock (not a monotonic one): tests move a FrozenClock and the windows move with it.
    app.state.rate_limiter = RateLimiter(lambda: app.state.clock.now().timestamp())
    app.add_middleware(LimitBodySize)
    app.add_middleware(RequestIds)
    problems.install(app)
    openapi.install(app)
    for module in (programs, members, events, rewards, rules, status, outbox):
        app.include_router(module.router)
    web.install(app)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/docs")

    @app.get("/health", tags=["operations"], summary="Readiness: the database answers, at this version's schema")
    async def health() -> Any:
        # Threads of its own: a load balancer's check is answered even while every request thread waits
        # (on a lock another process holds, on a database slow to answer).
        if (limiter := getattr(app.state, "health_threads", None)) is None:
            limiter = app.state.health_threads = anyio.CapacityLimiter(2)
        refusal = await anyio.to_thread.run_sync(_not_servable, app.state.db, limiter=limiter)
        if refusal is not None:  # an older or a newer schema: this node cannot serve, whatever it is sent
            return problems.problem(503, refusal.code, refusal.detail)
        return {"status": "ok"}

    # Uptime monitors often ask with HEAD: the same answer, whose body the server leaves out. Not documented
    # apart: the schema would list /health twice.
    app.add_api_route("/health", health, methods=["HEAD"], include_in_schema=False)
    return app
