"""`chatgate worker`: writes queued answers, several processes sharing one Redis queue."""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

from arq import func
from arq.connections import RedisSettings
from arq.worker import Worker

from chatgate.cache.service import AnswerCache, CachePlan
from chatgate.chat.answers import AnswerWriter
from chatgate.chat.models import Message
from chatgate.core.config import Settings
from chatgate.core.db import Database
from chatgate.core.logging import configure_logging
from chatgate.core.tracing import using_trace_id
from chatgate.providers.base import CompletionRequest
from chatgate.providers.fallback import ChainSpec
from chatgate.providers.registry import ProviderRegistry
from chatgate.ratelimit.service import RateLimiter
from chatgate.tasks.queue import WRITE_ANSWER

log = logging.getLogger("chatgate.worker")


async def write_answer(
    ctx: dict[str, Any],
    answer_id: str,
    chain: ChainSpec | str,
    request: CompletionRequest,
    cache: CachePlan | None = None,  # absent from jobs queued by an older API process
) -> dict[str, Any]:
    with using_trace_id(request.trace_id):
        return await _write_answer(ctx, answer_id, chain, request, cache)


async def _write_answer(
    ctx: dict[str, Any],
    answer_id: str,
    chain: ChainSpec | str,
    request: CompletionRequest,
    plan: CachePlan | None,
) -> dict[str, Any]:
    database: Database = ctx["database"]
    async with database.session() as db:
        answer = await db.get(Message, uuid.UUID(answer_id))
    if answer is None or answer.status != "streaming":
        # Deleted meanwhile, or already ended by an earlier try.
        return {"skipped": True, "worker": os.getpid()}
    if answer.content:
        answer.content = ""  # an earlier try died part-way; this one starts over
    registry: ProviderRegistry = ctx["providers"]
    # A job queued by an older API process names a single engine.
    provider = registry.chain(chain) if isinstance(chain, ChainSpec) else registry.get(chain)
    writer: AnswerWriter = ctx["writer"]
    end = await writer.write(answer=answer, provider=provider, request=request)
    cache: AnswerCache | None = ctx["cache"]
    if plan is not None and cache is not None:
        await cache.remember(
            plan, sent_question=request.messages[-1].content, provider_id=provider.id,
            answer=end.message,
        )  # fmt: skip
    log.info("answer written", extra={"message_id": answer_id, "status": end.message.status})
    return {"status": end.message.status, "worker": os.getpid()}


def build_worker(settings: Settings, *, burst: bool = False) -> Worker:
    if not settings.redis_url:
        raise RuntimeError("chatgate worker needs CHATGATE_REDIS_URL")

    async def startup(ctx: dict[str, Any]) -> None:
        database = Database(settings.database_url, pool_size=settings.database_pool_size)
        # arq's own Redis connection also carries the engines' shared circuit breakers.
        providers = ProviderRegistry(settings.providers, redis=ctx["redis"])
        await providers.start()
        ctx.update(
            database=database,
            providers=providers,
            cache=AnswerCache.build(settings, ctx["redis"]),
            writer=AnswerWriter(
                database=database,
                flush_every=settings.stream_flush_seconds,
                limiter=RateLimiter(settings.rate_limits, settings.redis_url),
            ),
        )
        log.info("worker ready", extra={"queue": settings.task_queue, "pid": os.getpid()})

    async def shutdown(ctx: dict[str, Any]) -> None:
        await ctx["providers"].close()
        await ctx["database"].close()

    # A fallback chain may try every engine in turn, each for up to its whole time.
    longest = sum(
        p.timeouts.total + p.timeouts.first_token + p.queue_timeout for p in settings.providers
    )
    return Worker(
        functions=[func(write_answer, name=WRITE_ANSWER, max_tries=3)],
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        queue_name=settings.task_queue,
        on_startup=startup,
        on_shutdown=shutdown,
        allow_abort_jobs=True,
        job_timeout=longest + 30,
        keep_result=3600,
        max_jobs=settings.worker_concurrency,
        burst=burst,
        handle_signals=True,
    )


def run_worker(settings: Settings) -> None:
    configure_logging(settings.log_level)
    build_worker(settings).run()
