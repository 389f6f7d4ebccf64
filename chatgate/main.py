"""The app factory: builds clients, pools and registries at start-up and closes them at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis

from chatgate.assistants.router import admin_router
from chatgate.assistants.router import router as assistants_router
from chatgate.assistants.service import AssistantCatalog
from chatgate.audit.router import router as audit_router
from chatgate.auth.keys import ApiKeys
from chatgate.auth.router import router as keys_router
from chatgate.auth.service import Authenticator
from chatgate.cache.service import AnswerCache
from chatgate.chat.answers import AnswerWriter, recover_unfinished_answers
from chatgate.chat.router import router as chat_router
from chatgate.chat.turns import TurnManager
from chatgate.core.config import Settings, load_settings
from chatgate.core.db import Database
from chatgate.core.errors import install_error_handlers
from chatgate.core.logging import configure_logging
from chatgate.gateway.edge import Edge
from chatgate.gateway.front import FrontedFastAPI, document_lanes
from chatgate.gateway.router import router as gateway_router
from chatgate.gateway.web import PAGE_HEADERS, WEB, PageHeaders
from chatgate.observability.metrics import forget_this_process
from chatgate.observability.probes import watch_pool
from chatgate.observability.router import router as observability_router
from chatgate.observability.tracing import Tracing, TracingMiddleware
from chatgate.openai_compat.lane import ChatCompletions
from chatgate.openai_compat.router import router as openai_router
from chatgate.providers.registry import ProviderRegistry
from chatgate.qa.router import router as qa_router
from chatgate.ratelimit.service import RateLimiter
from chatgate.tasks.queue import TaskQueue

log = logging.getLogger("chatgate")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings.database_url, pool_size=settings.database_pool_size)
        tracing: Tracing | None = app.state.tracing
        if tracing is not None:
            tracing.instrument_database(database.engine)
        unwatch_pool = watch_pool(database.engine)
        redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
        providers = ProviderRegistry(settings.providers, redis=redis)
        catalog = AssistantCatalog(
            database=database, redis=redis, provider_ids={p.id for p in settings.providers}
        )
        await catalog.seed(settings.assistants)
        api_keys = ApiKeys(database=database, redis=redis)
        authenticator = Authenticator(settings, api_keys)
        await providers.start()
        await authenticator.start()
        # One embedded process owns every answer; with Redis, workers may still be writing some.
        recovered = await recover_unfinished_answers(
            database, all_rows=settings.is_sqlite and not settings.redis_url
        )
        if recovered:
            log.warning("marked %d unfinished answers as interrupted", recovered)
        queue = (
            await TaskQueue.connect(settings.redis_url, queue_name=settings.task_queue)
            if settings.redis_url
            else None
        )
        limiter: RateLimiter = app.state.limiter
        writer = AnswerWriter(
            database=database, flush_every=settings.stream_flush_seconds, limiter=limiter
        )
        turns = TurnManager(
            database=database, providers=providers, writer=writer, queue=queue, limiter=limiter,
            cache=AnswerCache.build(settings, redis),
        )  # fmt: skip
        app.state.database = database
        app.state.redis = redis
        app.state.catalog = catalog
        app.state.providers = providers
        app.state.authenticator = authenticator
        app.state.api_keys = api_keys
        app.state.turns = turns
        try:
            yield
        finally:
            await turns.shutdown()
            if queue is not None:
                await queue.close()
            await authenticator.close()
            await providers.close()
            await database.close()
            unwatch_pool()
            forget_this_process()
            if tracing is not None:
                await asyncio.to_thread(tracing.shutdown)
            if redis is not None:
                await redis.aclose()

    app = FrontedFastAPI(
        title="chatgate",
        version="0.1.0",
        description="A self-hosted AI chat gateway.",
        lifespan=lifespan,
        # chatgate makes its own spans, metrics and logs (observability/, core/logging.py):
        # FastAPI's would be a second set, and checking for any of them (the logs' check reads
        # the environment) cost every request a few µs.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.limiter = RateLimiter(settings.rate_limits, settings.redis_url)
    app.state.tracing = Tracing.build(settings, version=app.version)
    spans = None
    if app.state.tracing is not None:
        # The request span, around the routes and around the lanes alike.
        spans = partial(TracingMiddleware, tracer=app.state.tracing.tracer)
        app.add_middleware(TracingMiddleware, tracer=app.state.tracing.tracer)
    edge = Edge(settings.access, app.state.limiter)
    lanes = [ChatCompletions()]
    app.front_options = {"edge": edge, "lanes": lanes, "wrap_lanes": spans}
    install_error_handlers(app)
    document_lanes(app, lanes)
    # Routes are matched in this order: the busiest first.
    app.include_router(openai_router)
    app.include_router(chat_router)
    app.include_router(qa_router)
    app.include_router(assistants_router)
    app.include_router(gateway_router)
    app.include_router(observability_router)
    app.include_router(admin_router)
    app.include_router(audit_router)
    app.include_router(keys_router)
    app.mount("/static", PageHeaders(StaticFiles(directory=WEB)), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        headers = {name.decode(): value.decode() for name, value in PAGE_HEADERS}
        return FileResponse(WEB / "index.html", headers=headers)

    return app
