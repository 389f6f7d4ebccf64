"""The Redis task queue (arq) for async answers, so they outlive the API process that took them,
and for documents' ingestion.

arq's own `create_pool` sets only a connect timeout, so a hung Redis would hold every enqueue,
status and abort: the client here is made with chatgate's timeouts (`core/redis.py`), and a
Redis that cannot answer is a 503 with a code, or no queue status, never a wait.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from arq.connections import ArqRedis
from arq.constants import (
    abort_jobs_ss,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from arq.jobs import Job, JobStatus
from arq.utils import timestamp_ms
from pydantic import TypeAdapter
from redis.asyncio import ConnectionPool

from chatgate.budgets.store import Reservation
from chatgate.cache.service import CachePlan
from chatgate.core.errors import ServiceUnavailable
from chatgate.core.redis import REDIS_ERRORS, redis_options
from chatgate.providers.base import CompletionRequest
from chatgate.providers.fallback import ChainSpec
from chatgate.vault.keyring import SEALED, KeyRing

WRITE_ANSWER = "write_answer"
INGEST_DOCUMENT = "ingest_document"
QueueStatus = Literal["queued", "running"]
# Seconds to connect or to wait for one reply. Queue calls are small; the worker's polls too.
QUEUE_TIMEOUT = 2.0
# As arq's create_pool: a Redis still starting is waited for this many times, a second apart.
CONNECT_TRIES = 5
log = logging.getLogger("chatgate.tasks")
JOB_CONTEXT = b"chatgate job"  # binds a sealed job to being one


@dataclass(frozen=True, slots=True)
class QueuedAnswer:
    """A queued answer: the engines to ask, in order, with the canned answer (`chain`), the
    request, and the cache's plan when the answer may be cached."""

    answer_id: uuid.UUID
    chain: ChainSpec
    request: CompletionRequest
    cache: CachePlan | None = None
    # The caller's budgets' hold on the answer, which the worker settles.
    reservation: Reservation | None = None


_QUEUED = TypeAdapter(QueuedAnswer)


@dataclass(frozen=True, slots=True)
class QueuedIngestion:
    """A document to index: the worker reads the file and the knowledge base from the database."""

    document_id: uuid.UUID


_INGESTION = TypeAdapter(QueuedIngestion)


@dataclass(frozen=True, slots=True)
class JobCodec:
    """arq's job and result envelopes as JSON, never pickle: whoever can write to Redis must not
    be able to run code in a worker. A value JSON has no form for (an exception in a failed
    job's result) is kept as its text. With encryption on, sealed under the deployment's newest
    key: a job holds the conversation it answers."""

    ring: KeyRing | None = None

    def encode(self, data: dict[str, Any]) -> bytes:
        raw = orjson.dumps(data, default=repr)
        return raw if self.ring is None else self.ring.seal_bytes(raw, JOB_CONTEXT)

    def decode(self, raw: bytes) -> dict[str, Any]:
        if raw.startswith(SEALED):
            if self.ring is None:
                raise ValueError("a sealed job, and no encryption keys to open it")
            raw = self.ring.open_bytes(raw, JOB_CONTEXT)
        data: dict[str, Any] = orjson.loads(raw)
        return data


def queued_answer(job: dict[str, Any]) -> QueuedAnswer:
    """A job's payload as the worker reads it, checked field by field."""
    return _QUEUED.validate_python(job)


def queued_ingestion(job: dict[str, Any]) -> QueuedIngestion:
    return _INGESTION.validate_python(job)


def queue_redis(
    url: str, codec: JobCodec | None = None, *, timeout: float = QUEUE_TIMEOUT
) -> ArqRedis:
    """arq's client for `url` with chatgate's timeouts and JSON jobs; no I/O until first use.
    The worker passes it to arq as `Worker(redis_pool=queue_redis(url, codec))`."""
    codec = codec or JobCodec()
    return ArqRedis(
        ConnectionPool.from_url(url, **redis_options(timeout)),
        job_serializer=codec.encode,
        job_deserializer=codec.decode,
    )


def queue_unavailable(exc: Exception) -> ServiceUnavailable:
    log.warning("the task queue cannot reach Redis: %s", exc or type(exc).__name__)
    return ServiceUnavailable(
        "the task queue cannot be reached right now", code="task_queue_unavailable",
        headers={"Retry-After": "5"},
    )  # fmt: skip


class TaskQueue:
    def __init__(self, redis: ArqRedis, *, queue_name: str) -> None:
        self.redis = redis
        self.queue_name = queue_name

    @classmethod
    async def connect(cls, url: str, *, queue_name: str, codec: JobCodec) -> TaskQueue:
        redis = queue_redis(url, codec)
        for attempt in range(CONNECT_TRIES):
            try:
                await redis.ping()
                break
            except REDIS_ERRORS:
                if attempt == CONNECT_TRIES - 1:
                    await redis.aclose()
                    raise
                await asyncio.sleep(1)
        return cls(redis, queue_name=queue_name)

    async def close(self) -> None:
        await self.redis.aclose()

    async def enqueue_answer(self, job: QueuedAnswer) -> None:
        """Queues an answer for a worker, which stores a cacheable one as the API would."""
        try:
            await self.redis.enqueue_job(
                WRITE_ANSWER, _QUEUED.dump_python(job, mode="json"),
                _job_id=str(job.answer_id), _queue_name=self.queue_name,
            )  # fmt: skip
        except REDIS_ERRORS as exc:
            raise queue_unavailable(exc) from exc

    async def enqueue_ingestion(self, job: QueuedIngestion) -> None:
        """Queues a document's ingestion for a worker (arq names the job: one document may be
        indexed again later)."""
        try:
            await self.redis.enqueue_job(
                INGEST_DOCUMENT, _INGESTION.dump_python(job, mode="json"),
                _queue_name=self.queue_name,
            )  # fmt: skip
        except REDIS_ERRORS as exc:
            raise queue_unavailable(exc) from exc

    def _job(self, answer_id: uuid.UUID) -> Job:
        return Job(str(answer_id), self.redis, _queue_name=self.queue_name)

    async def status(self, answer_id: uuid.UUID) -> QueueStatus | None:
        """Where a queued answer is; None when the queue no longer holds it or cannot be asked
        (the stored answer's own status then speaks)."""
        try:
            status = await self._job(answer_id).status()
        except REDIS_ERRORS as exc:
            log.warning("the task queue cannot reach Redis: %s", exc or type(exc).__name__)
            return None
        if status in (JobStatus.deferred, JobStatus.queued):
            return "queued"
        if status == JobStatus.in_progress:
            return "running"
        return None

    async def request_abort(self, answer_id: uuid.UUID) -> None:
        """Asks the worker writing this answer to stop (or any worker not to start it), without
        waiting: the stored answer says when it has ended (`TurnManager.stop_queued`)."""
        try:
            await self.redis.zadd(abort_jobs_ss, {str(answer_id): timestamp_ms()})
        except REDIS_ERRORS as exc:
            raise queue_unavailable(exc) from exc

    async def forget_answers(self, answer_ids: list[uuid.UUID]) -> int:
        """Erases these answers' jobs: a worker writing one is asked to stop, and the job, its
        tries and its result (which repeat the request, the user's words) are deleted; how
        many jobs and results there were. Raises when Redis cannot be reached: an erasure must
        not pass for done."""
        if not answer_ids:
            return 0
        ids = [str(answer_id) for answer_id in answer_ids]
        async with self.redis.pipeline() as pipe:
            pipe.zadd(abort_jobs_ss, dict.fromkeys(ids, timestamp_ms()))
            pipe.zrem(self.queue_name, *ids)
            pipe.delete(*(job_key_prefix + i for i in ids))
            pipe.delete(*(result_key_prefix + i for i in ids))
            pipe.delete(*(retry_key_prefix + i for i in ids))
            _, _, jobs, results, _ = await pipe.execute()
        return int(jobs) + int(results)

    async def depth(self) -> int:
        return int(await self.redis.zcard(self.queue_name))
