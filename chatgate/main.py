"""The API app factory: routes, the front door and lanes, and a lifespan that opens the runtime."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from chatgate.anthropic_compat.router import router as anthropic_router
from chatgate.assistants.router import admin_router
from chatgate.assistants.router import router as assistants_router
from chatgate.audit.router import router as audit_router
from chatgate.auth.router import router as keys_router
from chatgate.budgets.router import router as budgets_router
from chatgate.chat.answers import recover_unfinished_answers
from chatgate.chat.lane import HistoryLane
from chatgate.chat.router import router as chat_router
from chatgate.core.config import Settings, load_settings
from chatgate.core.errors import install_error_handlers
from chatgate.core.logging import configure_logging
from chatgate.gateway.drain import drain_on_sigterm
from chatgate.gateway.edge import Edge
from chatgate.gateway.front import Door, FrontedFastAPI, Lane, document_lanes
from chatgate.gateway.router import router as gateway_router
from chatgate.gateway.web import PAGE_HEADERS, WEB, PageHeaders
from chatgate.handoff.router import router as handoff_router
from chatgate.knowledge.ingest import recover_interrupted_ingestions
from chatgate.knowledge.router import router as knowledge_router
from chatgate.observability.tracing import Tracing, TracingMiddleware
from chatgate.openai_compat.embeddings.router import router as embeddings_router
from chatgate.openai_compat.lane import ChatCompletions
from chatgate.openai_compat.router import router as openai_router
from chatgate.privacy.router import router as privacy_router
from chatgate.qa.router import router as qa_router
from chatgate.ratelimit.service import RateLimiter
from chatgate.responses.router import router as responses_router
from chatgate.runtime import Runtime, open_runtime
from chatgate.usage.router import router as usage_router

log = logging.getLogger("chatgate")
VERSION = "0.1.0"


class ChatgateApp(FrontedFastAPI):
    """The API app; its lifespan attaches the process's runtime, which `core/parts.py` reads."""

    runtime: Runtime


def create_app(settings: Settings | None = None) -> ChatgateApp:
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    # The front door and the request spans are assembled before the lifespan runs; the runtime
    # takes these two over and closes them.
    limiter = RateLimiter(settings.rate_limits, settings.redis_url)
    tracing = Tracing.build(settings, version=VERSION)

    @asynccontextmanager
    async def lifespan(app: ChatgateApp) -> AsyncIterator[None]:
        async with open_runtime(settings, limiter=limiter, tracing=tracing) as runtime:
            await runtime.catalog.seed(settings.assistants)
            await runtime.prices.seed(settings.prices)
            # One embedded process owns every answer; with Redis, workers may still write some.
            recovered = await recover_unfinished_answers(
                runtime.database, all_rows=settings.is_sqlite and not settings.redis_url
            )
            if recovered:
                log.warning("marked %d unfinished answers as interrupted", recovered)
            stopped = await recover_interrupted_ingestions(
                runtime.database, all_rows=settings.is_sqlite and not settings.redis_url
            )
            if stopped:
                log.warning("marked %d interrupted ingestions as failed", stopped)
            app.runtime = runtime
            drain = partial(runtime.turns.drain, settings.drain_grace_seconds)
            with drain_on_sigterm(drain):
                yield

    app = ChatgateApp(
        title="chatgate",
        version=VERSION,
        description="A self-hosted AI chat gateway.",
        lifespan=lifespan,
        # chatgate makes its own spans, metrics and logs (observability/, core/logging.py):
        # FastAPI's would be a second set, and checking for any of them (the logs' check reads
        # the environment) cost every request a few µs.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    spans = None
    if tracing is not None:
        # The request span, around the routes and around the lanes alike.
        spans = partial(TracingMiddleware, tracer=tracing.tracer)
        app.add_middleware(TracingMiddleware, tracer=tracing.tracer)
    edge = Edge(settings.access, limiter)
    lanes: list[Lane] = [ChatCompletions(), HistoryLane()]
    app.front_options = {
        "edge": edge, "door": Door.of(settings), "lanes": lanes, "wrap_lanes": spans,
    }  # fmt: skip
    install_error_handlers(app)
    document_lanes(app, lanes)
    # Routes are matched in this order: the busiest first.
    app.include_router(openai_router)
    app.include_router(responses_router)
    app.include_router(embeddings_router)
    app.include_router(anthropic_router)
    app.include_router(chat_router)
    app.include_router(qa_router)
    app.include_router(assistants_router)
    app.include_router(gateway_router)
    app.include_router(admin_router)
    app.include_router(audit_router)
    app.include_router(usage_router)
    app.include_router(budgets_router)
    app.include_router(keys_router)
    app.include_router(handoff_router)
    app.include_router(knowledge_router)
    app.include_router(privacy_router)
    app.mount("/static", PageHeaders(StaticFiles(directory=WEB)), name="static")

    headers = {name.decode(): value.decode() for name, value in PAGE_HEADERS}

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB / "index.html", headers=headers)

    @app.get("/admin", include_in_schema=False)
    @app.get("/admin/", include_in_schema=False)
    async def console() -> FileResponse:
        """The operators' console; its data is the admin API's, so the page itself is public."""
        return FileResponse(WEB / "admin" / "index.html", headers=headers)

    return app
