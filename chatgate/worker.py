"""`chatgate worker`: writes queued answers, several processes sharing one Redis queue.

An entry point like `main.py`: it opens the same runtime as the API process, and its one job
hands each queued answer to the runtime's turn manager."""

from __future__ import annotations

import logging
import os
import uuid
from contextlib import AsyncExitStack
from typing import Any

from arq import func
from arq.connections import RedisSettings
from arq.worker import Worker

from chatgate.cache.service import CachePlan
from chatgate.core.config import Settings
from chatgate.core.logging import configure_logging
from chatgate.core.tracing import using_trace_id
from chatgate.providers.base import CompletionRequest
from chatgate.providers.fallback import ChainSpec
from chatgate.runtime import Runtime, open_runtime
from chatgate.tasks.queue import WRITE_ANSWER

log = logging.getLogger("chatgate.worker")


async def write_answer(
    ctx: dict[str, Any],
    answer_id: str,
    chain: ChainSpec | str,
    request: CompletionRequest,
    cache: CachePlan | None = None,  # absent from jobs queued by an older API process
) -> dict[str, Any]:
    runtime: Runtime = ctx["runtime"]
    # A job queued by an older API process names a single engine.
    registry = runtime.providers
    provider = registry.chain(chain) if isinstance(chain, ChainSpec) else registry.get(chain)
    with using_trace_id(request.trace_id):
        status = await runtime.turns.write_queued(uuid.UUID(answer_id), provider, request, cache)
    if status is None:
        # Deleted meanwhile, or already ended by an earlier try.
        return {"skipped": True, "worker": os.getpid()}
    log.info("answer written", extra={"message_id": answer_id, "status": status})
    return {"status": status, "worker": os.getpid()}


def build_worker(settings: Settings, *, burst: bool = False) -> Worker:
    if not settings.redis_url:
        raise RuntimeError("chatgate worker needs CHATGATE_REDIS_URL")

    async def startup(ctx: dict[str, Any]) -> None:
        stack = AsyncExitStack()
        ctx["stack"] = stack
        ctx["runtime"] = await stack.enter_async_context(open_runtime(settings))
        log.info("worker ready", extra={"queue": settings.task_queue, "pid": os.getpid()})

    async def shutdown(ctx: dict[str, Any]) -> None:
        await ctx["stack"].aclose()

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
