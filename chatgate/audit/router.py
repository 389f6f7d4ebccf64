from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from chatgate.audit.schemas import AuditEventOut, AuditPage
from chatgate.audit.service import list_audit_events
from chatgate.auth.deps import AdminUser
from chatgate.core.deps import DbSession
from chatgate.core.ids import parse_id

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.get("/audit", response_model=AuditPage)
async def read_audit(
    db: DbSession,
    _: AdminUser,
    action: str | None = None,
    user_id: str | None = None,
    # A time without its zone names no instant: refused (422), never guessed.
    since: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> AuditPage:
    events, next_id = await list_audit_events(
        db, action=action, user_id=user_id, since=since, limit=limit,
        cursor=parse_id(cursor, what="cursor") if cursor else None,
    )  # fmt: skip
    return AuditPage(
        data=[AuditEventOut.of(e) for e in events],
        has_more=next_id is not None,
        next_cursor=str(next_id) if next_id else None,
    )
