"""The Redis task queue (arq) for async answers, so they outlive the API process that took them."""

from __future__ import annotations

import uuid
from typing import Literal

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.jobs import Job, JobStatus

from chatgate.cache.service import CachePlan
from chatgate.providers.base import CompletionRequest
from chatgate.providers.fallback import ChainSpec

WRITE_ANSWER = "write_answer"
QueueStatus = Literal["queued", "running"]


class TaskQueue:
    def __init__(self, redis: ArqRedis, *, queue_name: str) -> None:
        self.redis = redis
        self.queue_name = queue_name

    @classmethod
    async def connect(cls, url: str, *, queue_name: str) -> TaskQueue:
        return cls(await create_pool(RedisSettings.from_dsn(url)), queue_name=queue_name)

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
        await self.redis.enqueue_job(
            WRITE_ANSWER, str(answer_id), chain, request, cache,
            _job_id=str(answer_id), _queue_name=self.queue_name,
        )  # fmt: skip

    def _job(self, answer_id: uuid.UUID) -> Job:
        return Job(str(answer_id), self.redis, _queue_name=self.queue_name)

    async def status(self, answer_id: uuid.UUID) -> QueueStatus | None:
        """Where a queued answer is; None when the queue no longer holds it."""
        status = await self._job(answer_id).status()
        if status in (JobStatus.deferred, JobStatus.queued):
            return "queued"
        if status == JobStatus.in_progress:
            return "running"
        return None

    async def abort(self, answer_id: uuid.UUID) -> None:
        """Asks the worker writing this answer to stop, and waits until it has."""
        await self._job(answer_id).abort(timeout=5, poll_delay=0.1)

    async def depth(self) -> int:
        return int(await self.redis.zcard(self.queue_name))
