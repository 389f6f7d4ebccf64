"""The Redis task queue (arq) for async answers, so they outlive the API process that took them.

arq's own `create_pool` sets only a connect timeout, so a hung Redis would hold every enqueue,
status and abort: the client here is made with chatgate's timeouts (`core/redis.py`), and a
Redis that cannot answer is a 503 with a code, or no queue status, never a wait.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Literal

from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from redis.asyncio import ConnectionPool

from chatgate.cache.service import CachePlan
from chatgate.core.errors import ServiceUnavailable
from chatgate.core.redis import REDIS_ERRORS, redis_options
from chatgate.providers.base import CompletionRequest
from chatgate.providers.fallback import ChainSpec

WRITE_ANSWER = "write_answer"
QueueStatus = Literal["queued", "running"]
# Seconds to connect or to wait for one reply. Queue calls are small; the worker's polls too.
QUEUE_TIMEOUT = 2.0
# As arq's create_pool: a Redis still starting is waited for this many times, a second apart.
CONNECT_TRIES = 5
log = logging.getLogger("chatgate.tasks")


def queue_redis(url: str, *, timeout: float = QUEUE_TIMEOUT) -> ArqRedis:
    """arq's client for `url` with chatgate's timeouts; no I/O until first use. The worker passes
    it to arq as `Worker(redis_pool=queue_redis(url))` instead of `redis_settings`."""
    return ArqRedis(ConnectionPool.from_url(url, **redis_options(timeout)))


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
    async def connect(cls, url: str, *, queue_name: str) -> TaskQueue:
        redis = queue_redis(url)
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

    async def enqueue_answer(
        self,
        *,
        answer_id: uuid.UUID,
        chain: ChainSpec,
        request: CompletionRequest,
        cache: CachePlan | None = None,
    ) -> None:
        """Queues an answer with the engines to ask, in order, and the canned answer; with the
        cache's plan when the answer may be cached, so the worker stores it as the API would."""
        try:
            await self.redis.enqueue_job(
                WRITE_ANSWER, str(answer_id), chain, request, cache,
                _job_id=str(answer_id), _queue_name=self.queue_name,
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

    async def abort(self, answer_id: uuid.UUID) -> None:
        """Asks the worker writing this answer to stop, and waits until it has."""
        try:
            await self._job(answer_id).abort(timeout=5, poll_delay=0.1)
        except TimeoutError:
            return  # the worker did not confirm in time: the stored answer says where it is
        except REDIS_ERRORS as exc:
            raise queue_unavailable(exc) from exc

    async def depth(self) -> int:
        return int(await self.redis.zcard(self.queue_name))
