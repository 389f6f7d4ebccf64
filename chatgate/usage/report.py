"""`GET /v1/admin/usage`: the ledger's rows summed by user, key, assistant, model or day, over a
time range (since inclusive, until exclusive), sorted by cost (by day for days)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Integer, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.core.errors import AppError
from chatgate.usage.models import UsageRecord
from chatgate.usage.schemas import GroupBy, UsageGroup

COLUMNS: dict[GroupBy, Any] = {
    "user": UsageRecord.user_id,
    "key": UsageRecord.key_id,
    "assistant": UsageRecord.assistant_id,
    "model": UsageRecord.model,
    "day": UsageRecord.day,
}


def parse_instant(value: str, *, name: str) -> datetime:
    """A date (its midnight, UTC) or an ISO datetime with its zone; else 422 `invalid_time`."""
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), UTC)
        instant = datetime.fromisoformat(value)
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise AppError(
            f"{name} must be a date (YYYY-MM-DD) or an ISO datetime with its zone "
            "(2026-12-01T08:00:00+08:00)",
            code="invalid_time",
            status=422,
        )
    return instant.astimezone(UTC)


async def usage_report(
    db: AsyncSession,
    *,
    group_by: GroupBy,
    since: datetime | None = None,
    until: datetime | None = None,
    user_id: str | None = None,
    key_id: str | None = None,
    assistant_id: str | None = None,
) -> list[UsageGroup]:
    column = COLUMNS[group_by]
    query = select(
        column,
        func.sum(UsageRecord.calls),
        func.sum(UsageRecord.prompt_tokens),
        func.sum(UsageRecord.completion_tokens),
        func.sum(UsageRecord.cost),
        func.sum(cast(UsageRecord.cached, Integer) * UsageRecord.calls),
    ).group_by(column)
    if since is not None:
        query = query.where(UsageRecord.created_at >= since)
    if until is not None:
        query = query.where(UsageRecord.created_at < until)
    for filtered, wanted in (
        (UsageRecord.user_id, user_id),
        (UsageRecord.key_id, key_id),
        (UsageRecord.assistant_id, assistant_id),
    ):
        if wanted is not None:
            query = query.where(filtered == wanted)
    groups = [
        UsageGroup(
            group=group.isoformat() if isinstance(group, date) else group,
            requests=int(requests or 0),
            prompt_tokens=int(prompt or 0),
            completion_tokens=int(completion or 0),
            cost=float(cost or 0),
            cached_requests=int(cached or 0),
        )
        for group, requests, prompt, completion, cost, cached in await db.execute(query)
    ]
    if group_by == "day":
        return sorted(groups, key=lambda g: g.group or "")
    return sorted(groups, key=lambda g: (-g.cost, g.group is None, g.group or ""))


async def spent_between(
    db: AsyncSession, *, scope: str, subject_id: str, first_day: date, end_day: date
) -> tuple[int, float]:
    """The tokens and cost a user (`scope` "user") or API key spent from `first_day` up to
    `end_day` (excluded), cached answers left out (they cost nothing): what a budget counts."""
    column = UsageRecord.key_id if scope == "key" else UsageRecord.user_id
    query = select(
        func.sum(UsageRecord.prompt_tokens + UsageRecord.completion_tokens),
        func.sum(UsageRecord.cost),
    ).where(
        column == subject_id,
        UsageRecord.day >= first_day,
        UsageRecord.day < end_day,
        UsageRecord.cached.is_(False),
    )
    tokens, cost = (await db.execute(query)).one()
    return int(tokens or 0), float(cost or 0)
