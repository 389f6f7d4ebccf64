"""A copy of everything a user said and was answered (`GET /v1/me/export`): JSON, or a zip of one
Markdown file per conversation. Both are written while the conversations are read
(`chat.walk`), a batch at a time, so the memory an export takes does not grow with its size.

The zip is the standard library's `zipfile` writing into a sink that hands its bytes on after
every batch: a ZipFile on a stream that cannot seek writes each member's sizes after its data
(data descriptors), as every unzip tool reads. stream-zip was as fast and as small
(bench/zip_choice.py) but would be a dependency, and its async use runs the whole zip in a thread
that fetches each input chunk back from the loop; here only deflating a batch goes to a thread
(zlib lets go of the GIL meanwhile), so other requests are served while it compresses.

Starting an export is audited (who, when, which format: no content) and limited: an export
reads all of a user's conversations, so each user may start `EXPORTS_PER_WINDOW` of them per
`EXPORT_WINDOW`, counted from the audit trail (shared by every process, and kept across
restarts), besides the request limit every call counts against."""

from __future__ import annotations

import asyncio
import math
import uuid
import zipfile
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Literal

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.audit.models import AuditEvent
from chatgate.audit.service import record_audit_event
from chatgate.auth.service import User
from chatgate.chat.schemas import SessionOut
from chatgate.chat.walk import walk_conversations
from chatgate.core.db import Database
from chatgate.privacy.markdown import FileNames, conversation_head, message_markdown
from chatgate.ratelimit.service import RateLimited

ExportFormat = Literal["json", "markdown"]
MEDIA_TYPES: dict[ExportFormat, str] = {"json": "application/json", "markdown": "application/zip"}
EXPORTED = "user.exported"  # the audit action
EXPORTS_PER_WINDOW = 5
EXPORT_WINDOW = timedelta(minutes=10)
FLUSH_BYTES = 64 * 1024  # the zip is handed on once this much is written


def export_file_name(export_format: ExportFormat, exported_at: datetime) -> str:
    extension = "json" if export_format == "json" else "zip"
    return f"chatgate-export-{exported_at:%Y-%m-%dT%H-%M-%SZ}.{extension}"


async def start_export(
    db: AsyncSession,
    *,
    user: User,
    export_format: ExportFormat,
    now: datetime,
    limited: bool = True,
) -> None:
    """Refuses a user over their exports' allowance (429 with Retry-After); else audits it."""
    if limited:
        await _check_allowance(db, user=user, now=now)
    details: dict[str, str] = {"format": export_format}
    if user.key_id:
        details["key_id"] = user.key_id
    record_audit_event(
        db, action=EXPORTED, user_id=user.id, target_type="user", target_id=user.id,
        details=details,
    )  # fmt: skip
    await db.commit()


async def _check_allowance(db: AsyncSession, *, user: User, now: datetime) -> None:
    since = now - EXPORT_WINDOW
    recent = list(
        await db.scalars(
            select(AuditEvent.created_at)
            .where(
                AuditEvent.user_id == user.id,
                AuditEvent.id >= _first_id_at(since),  # keeps to the window on the id index
                AuditEvent.action == EXPORTED,
                AuditEvent.created_at > since,
            )
            .order_by(AuditEvent.id.desc())
            .limit(EXPORTS_PER_WINDOW)
        )
    )
    if len(recent) < EXPORTS_PER_WINDOW:
        return
    wait = max(1, math.ceil((min(recent) + EXPORT_WINDOW - now).total_seconds()))
    raise RateLimited(
        f"at most {EXPORTS_PER_WINDOW} exports every {EXPORT_WINDOW.seconds // 60} minutes; "
        f"retry in {wait}s",
        code="export_rate_limited",
        headers={"Retry-After": str(wait)},
    )


def _first_id_at(moment: datetime) -> uuid.UUID:
    """The smallest UUIDv7 (core/ids.py) made at `moment`: its first 48 bits are milliseconds."""
    return uuid.UUID(int=int(moment.timestamp() * 1000) << 80)


async def json_export(
    database: Database, *, user: User, exported_at: datetime
) -> AsyncIterator[bytes]:
    """`{"user_id", "exported_at", "sessions": [Session + {"messages": [Message]}]}`, with the
    session and message JSON of the sessions and history APIs."""
    head = orjson.dumps({"user_id": user.id, "exported_at": exported_at}, option=orjson.OPT_UTC_Z)
    yield head[:-1] + b',"sessions":['
    sessions = 0
    messages_written = False
    async for item in walk_conversations(database, user=user):
        if isinstance(item, SessionOut):
            opening = item.model_dump_json().encode()[:-1] + b',"messages":['
            yield opening if sessions == 0 else b"]}," + opening
            sessions += 1
            messages_written = False
            continue
        # OPT_UTC_Z writes times as pydantic does, so each message equals the history API's.
        batch = b",".join(orjson.dumps(message, option=orjson.OPT_UTC_Z) for message in item)
        yield b"," + batch if messages_written else batch
        messages_written = True
    yield b"]}]}" if sessions else b"]}"


class _Sink:
    """A write-only stream for zipfile that keeps what was written until it is taken."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self._chunks.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        taken = b"".join(self._chunks)
        self._chunks.clear()
        self.size = 0
        return taken


async def markdown_export(database: Database, *, user: User) -> AsyncIterator[bytes]:
    """A zip of one Markdown file per conversation."""
    sink = _Sink()
    archive = zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED)
    member = None
    names = FileNames()
    async for item in walk_conversations(database, user=user):
        if isinstance(item, SessionOut):
            if member is not None:
                member.close()
            member = archive.open(_member_info(names.for_session(item), item), "w")
            member.write(conversation_head(item).encode())
        else:
            assert member is not None, "messages come after their session"
            text = "".join(message_markdown(message) for message in item).encode()
            await asyncio.to_thread(member.write, text)
        if sink.size >= FLUSH_BYTES:
            yield sink.take()
    if member is not None:
        member.close()
    archive.close()
    yield sink.take()


def _member_info(name: str, session: SessionOut) -> zipfile.ZipInfo:
    stamp = session.updated_at
    info = zipfile.ZipInfo(
        name,
        date_time=(stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second),
    )
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16  # rw-r--r-- where unzipped
    return info
