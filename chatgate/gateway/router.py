"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from chatgate.core.deps import DatabaseDep
from chatgate.core.responses import JSONBytes

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "healthy"}


@router.get("/ready")
async def ready(database: DatabaseDep) -> JSONBytes:
    checks: dict[str, Any] = {}
    try:
        await database.ping()
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; the reason is reported
        checks["database"] = f"failed: {type(exc).__name__}"
        return JSONBytes({"status": "not_ready", "checks": checks}, status_code=503)
    return JSONBytes({"status": "ready", "checks": checks})
