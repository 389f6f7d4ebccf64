"""Liveness, readiness and the metrics scrape: the process as a whole, seen from outside."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from redis.asyncio import Redis

from chatgate.chat.turns import TurnManager
from chatgate.core.deps import DatabaseDep
from chatgate.core.parts import optional_part
from chatgate.core.responses import JSONBytes
from chatgate.observability.metrics import render_metrics
from chatgate.observability.probes import check_dependencies, refresh_scrape_gauges
from chatgate.tasks.queue import TaskQueue

router = APIRouter(tags=["health"])
RedisDep = Annotated[Redis | None, Depends(optional_part(Redis))]
QueueDep = Annotated[TaskQueue | None, Depends(optional_part(TaskQueue))]
TurnsDep = Annotated[TurnManager | None, Depends(optional_part(TurnManager))]


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "healthy"}


@router.get("/ready")
async def ready(database: DatabaseDep, redis: RedisDep, turns: TurnsDep) -> JSONBytes:
    """Ready when the database and Redis (if configured) answer and the process is not draining
    (SIGTERM); else 503 naming what failed."""
    if turns is not None and turns.draining:
        return JSONBytes({"status": "not_ready", "checks": {"drain": "draining"}}, status_code=503)
    checks = await check_dependencies(database, redis)
    if any(result != "ok" for result in checks.values()):
        return JSONBytes({"status": "not_ready", "checks": checks}, status_code=503)
    return JSONBytes({"status": "ready", "checks": checks})


@router.get("/metrics", include_in_schema=False, tags=["observability"])
async def read_metrics(database: DatabaseDep, redis: RedisDep, queue: QueueDep) -> Response:
    await refresh_scrape_gauges(database=database, redis=redis, queue=queue)
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)
