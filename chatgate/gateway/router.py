"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request

from chatgate.core.deps import DatabaseDep
from chatgate.core.responses import JSONBytes
from chatgate.observability.probes import check_dependencies

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "healthy"}


@router.get("/ready")
async def ready(request: Request, database: DatabaseDep) -> JSONBytes:
    """Ready when the database and Redis (if configured) answer; else 503 naming what failed."""
    checks = await check_dependencies(database, request.app.state.redis)
    if any(result != "ok" for result in checks.values()):
        return JSONBytes({"status": "not_ready", "checks": checks}, status_code=503)
    return JSONBytes({"status": "ready", "checks": checks})
