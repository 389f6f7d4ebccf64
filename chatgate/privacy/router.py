"""Your data (API.md): thin HTTP over the privacy services."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from chatgate.auth.deps import AdminUser, CurrentUser
from chatgate.core.deps import DatabaseDep, DbSession, SettingsDep
from chatgate.core.errors import Conflict
from chatgate.core.time import utcnow
from chatgate.privacy.deps import Erasing, Retention
from chatgate.privacy.export import (
    MEDIA_TYPES,
    ExportFormat,
    export_file_name,
    json_export,
    markdown_export,
    start_export,
)
from chatgate.privacy.schemas import Export

router = APIRouter(prefix="/v1", tags=["your data"])
ERASURE_DESCRIPTION = (
    "Erases every session, message, cached answer and queued task of {whom}, in every process "
    "(answers being written are stopped first); audited with counts, never content. "
    "Idempotent: a user with nothing is 204 too."
)
EXPORT_DESCRIPTION = (
    "All of the caller's conversations with every message, streamed: JSON "
    '(`{"user_id", "exported_at", "sessions": [Session + {"messages": [Message]}]}`), or a zip '
    "of one Markdown file per conversation. A service key exports the end user it names in "
    "X-Chatgate-User. Audited; at most 5 exports per user every 10 minutes (429 "
    "`export_rate_limited`). Its JSON is documented below; it is written as it is read."
)


@router.get(
    "/me/export",
    description=EXPORT_DESCRIPTION,
    response_model=None,
    responses={200: {"model": Export, "content": {"application/zip": {}}}},
)
async def export_my_data(
    user: CurrentUser,
    db: DbSession,
    database: DatabaseDep,
    settings: SettingsDep,
    export_format: Annotated[ExportFormat, Query(alias="format")] = "json",
) -> StreamingResponse:
    exported_at = utcnow()
    await start_export(
        db, user=user, export_format=export_format, now=exported_at,
        limited=settings.rate_limits.enabled,
    )  # fmt: skip
    body = (
        json_export(database, user=user, exported_at=exported_at)
        if export_format == "json"
        else markdown_export(database, user=user)
    )
    name = export_file_name(export_format, exported_at)
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    return StreamingResponse(body, media_type=MEDIA_TYPES[export_format], headers=headers)


@router.delete("/me", status_code=204, description=ERASURE_DESCRIPTION.format(whom="the caller"))
async def erase_my_data(user: CurrentUser, erasure: Erasing) -> None:
    await erasure.erase_user(user.id, by=user.id)


@router.delete(
    "/admin/users/{user_id}", status_code=204, tags=["admin"],
    description=ERASURE_DESCRIPTION.format(whom="that user"),
)  # fmt: skip
async def erase_user_data(user_id: str, admin: AdminUser, erasure: Erasing) -> None:
    await erasure.erase_user(user_id, by=admin.id)


@router.post("/admin/retention/run", tags=["admin"])
async def run_retention(admin: AdminUser, retention: Retention) -> dict[str, dict[str, int]]:
    """Runs the retention job now, as its schedule would: what it erased."""
    removed = await retention.run(by=admin.id)
    if removed is None:
        raise Conflict(
            "the retention job is running in this or another process", code="retention_running"
        )
    return {"removed": removed}
