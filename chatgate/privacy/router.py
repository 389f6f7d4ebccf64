"""Your data (API.md): thin HTTP over the privacy services."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from chatgate.auth.deps import CurrentUser
from chatgate.core.deps import DatabaseDep, DbSession, SettingsDep
from chatgate.core.time import utcnow
from chatgate.privacy.export import (
    MEDIA_TYPES,
    ExportFormat,
    export_file_name,
    json_export,
    markdown_export,
    start_export,
)

router = APIRouter(prefix="/v1", tags=["your data"])
EXPORT_DESCRIPTION = (
    "All of the caller's conversations with every message, streamed: JSON "
    '(`{"user_id", "exported_at", "sessions": [Session + {"messages": [Message]}]}`), or a zip '
    "of one Markdown file per conversation. A service key exports the end user it names in "
    "X-Chatgate-User. Audited; at most 5 exports per user every 10 minutes (429 "
    "`export_rate_limited`)."
)


@router.get(
    "/me/export",
    description=EXPORT_DESCRIPTION,
    response_class=StreamingResponse,
    responses={200: {"content": {"application/json": {}, "application/zip": {}}}},
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
