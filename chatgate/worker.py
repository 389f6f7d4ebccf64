"""`chatgate worker`: writes queued answers and ingests documents, several processes sharing one
Redis queue.

An entry point like `main.py`: it opens the same runtime as the API process, and its one job
hands each queued answer to the runtime's turn manager, each document to its ingestion."""

from __future__ import annotations

import logging
import math
import os
import uuid
from contextlib import AsyncExitStack
from typing import Any

from arq import func
from arq.worker import Worker

from chatgate.chat.service import answer_owner
from chatgate.core.config import Settings
from chatgate.core.errors import DATABASE_DOWN
from chatgate.core.logging import configure_logging
from chatgate.core.tracing import using_trace_id
from chatgate.runtime import Runtime, open_runtime
from chatgate.tasks.queue import (
    INGEST_DOCUMENT,
    WRITE_ANSWER,
    JobCodec,
    queue_redis,
    queued_answer,
    queued_ingestion,
)
from chatgate.vault.keyring import load_keyring

log = logging.getLogger("chatgate.worker")
INGEST_SECONDS = 3600


async def write_answer(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    runtime: Runtime = ctx["runtime"]
    job = queued_answer(payload)
    ctx["answer_id"] = job.answer_id
    provider = runtime.providers.chain(job.chain)
    owner = await answer_owner(runtime.database, job.answer_id)
    if owner is not None:
        await runtime.vault.enter(owner)  # the answer is sealed with its user's key
    with using_trace_id(job.request.trace_id):
        status = await runtime.turns.write_queued(
            job.answer_id, provider, job.request, job.cache, job.reservation
        )
        if status is None:
            # Deleted meanwhile, stopped before it started, or ended by an earlier try.
            ctx["forget_result"] = True
            return {"skipped": True, "worker": os.getpid()}
        log.info("answer written", extra={"message_id": str(job.answer_id), "status": status})
    return {"status": status, "worker": os.getpid()}


async def forget_skipped_result(ctx: dict[str, Any]) -> None:
    """arq keeps a job's result for an hour, and the result repeats the job's request (the
    user's words): an answer erased before or while it was written leaves none behind. That
    includes a job the erasure aborted, or one that ended just after it: arq records their
    results after the erasure deleted what was there, so the answer's row decides."""
    runtime: Runtime = ctx["runtime"]
    answer_id: uuid.UUID | None = ctx.get("answer_id")
    if answer_id is None or runtime.queue is None:
        return
    try:
        erased = ctx.get("forget_result") or await answer_owner(runtime.database, answer_id) is None
    except DATABASE_DOWN as exc:
        log.warning("could not tell whether answer %s was erased: %r", answer_id, exc)
        return
    if erased:
        await runtime.queue.forget_answers([answer_id])


async def ingest_document(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    runtime: Runtime = ctx["runtime"]
    job = queued_ingestion(payload)
    status = await runtime.ingestion.run(job.document_id)
    log.info("document ingested", extra={"document_id": str(job.document_id), "status": status})
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

    codec = JobCodec(load_keyring(settings))
    # A fallback chain may try every engine in turn, each for up to its whole time.
    longest = sum(
        p.timeouts.total + p.timeouts.first_token + p.queue_timeout for p in settings.providers
    )
    return Worker(
        functions=[
            func(write_answer, name=WRITE_ANSWER, max_tries=3),
            # A large document parses and embeds for minutes; a retry starts it afresh.
            func(ingest_document, name=INGEST_DOCUMENT, max_tries=2, timeout=INGEST_SECONDS),
        ],
        # chatgate's timeouts, and jobs as JSON (never pickle) both ways.
        redis_pool=queue_redis(settings.redis_url, codec),
        job_serializer=codec.encode,
        job_deserializer=codec.decode,
        queue_name=settings.task_queue,
        on_startup=startup,
        on_shutdown=shutdown,
        after_job_end=forget_skipped_result,
        allow_abort_jobs=True,
        job_timeout=longest + 30,
        keep_result=3600,
        max_jobs=settings.worker_concurrency,
        burst=burst,
        handle_signals=True,
        # SIGTERM: no new jobs; those running get the drain's grace, then end `interrupted`.
        job_completion_wait=math.ceil(settings.drain_grace_seconds),
    )


def run_worker(settings: Settings) -> None:
    configure_logging(settings.log_level)
    build_worker(settings).run()
