"""Erasure: everything chatgate holds of one user's conversations, gone (API.md, `DELETE /v1/me`
and `DELETE /v1/admin/users/{user_id}`).

`Erasure.steps` is the one list of what erasing a user does, in order; the user is erased when
the last step has run, and only then is the audit event written (who asked, whom, how many of
each kind were removed: never content). Every step is idempotent, so erasing a user who has
nothing, or again after a failure part-way, is the same request.

  stop_turns       in every process (`ErasureNotices`): answers being written for the user are
                   stopped, so none outlives the erasure (a turn that still ends after it finds
                   its rows gone and writes nothing back: `TurnManager._remember`)
  conversations    sessions and messages, a batch of sessions per transaction; the queued jobs
                   of their recent answers first (a job, its tries and its result repeat the
                   user's words in Redis)
  cached_answers   the answer-cache entries the user's turns stored (the cache's owner index)
  data_key         the user's data key (added by the runtime): crypto-shredding, so what is
                   left of theirs in a backup taken before no longer opens

Erasing is not closing an account: the audit trail keeps its events (they hold no content), the
user's API keys and budgets stay (an admin removes them), their usage rows stay under the name
`erased` (the runtime tells the usage ledger: totals stay right, who it was does not), and the
user may start new conversations after.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, select

from chatgate.audit.service import record_audit_event
from chatgate.cache.service import AnswerCache
from chatgate.chat.models import ChatSession, Message
from chatgate.chat.turns import TurnManager
from chatgate.core.db import Database
from chatgate.core.time import utcnow
from chatgate.privacy.notices import ErasureNotices
from chatgate.tasks.queue import TaskQueue

log = logging.getLogger("chatgate.privacy.erasure")
BATCH = 200
# How long arq may keep an answer's job or result (a day past its start, a result an hour):
# older answers have none left to erase.
JOB_LIFETIME = timedelta(days=2)

# One step of erasing a user: what it removed, by kind.
ErasureStep = Callable[[str], Awaitable[dict[str, int]]]


class Erasure:
    def __init__(
        self,
        *,
        database: Database,
        turns: TurnManager,
        notices: ErasureNotices,
        cache: AnswerCache | None,
        queue: TaskQueue | None,
    ) -> None:
        self._database = database
        self._notices = notices
        self._cache = cache
        self._queue = queue
        notices.on_erasure(self._stop_turns_here(turns))
        self.steps: list[tuple[str, ErasureStep]] = [
            ("stop_turns", self._stop_turns),
            ("conversations", self._erase_conversations),
            ("cached_answers", self._erase_cached_answers),
        ]

    def add_step(self, name: str, step: ErasureStep) -> None:
        """A step run after the others (a part that holds more of a user's data, e.g. the
        vault's destroying of their data key, adds its own)."""
        self.steps.append((name, step))

    async def erase_user(self, user_id: str, *, by: str) -> dict[str, int]:
        """Runs every step for the user, then audits it; the counts of what was removed."""
        removed: Counter[str] = Counter()
        for _, step in self.steps:
            removed.update(await step(user_id))
        # Everything of this user is gone: only now is it recorded as done.
        counts = dict(removed)
        async with self._database.session() as db:
            record_audit_event(
                db, action="user.erased", user_id=by, target_type="user", target_id=user_id,
                details={"removed": counts},
            )  # fmt: skip
            await db.commit()
        log.info("user erased", extra={"removed": counts})
        return counts

    @staticmethod
    def _stop_turns_here(turns: TurnManager) -> Callable[[str, datetime], Awaitable[int]]:
        async def stop(user_id: str, erased_at: datetime) -> int:
            return await turns.stop_turns_of(user_id, begun_before=erased_at)

        return stop

    async def _stop_turns(self, user_id: str) -> dict[str, int]:
        await self._notices.announce(user_id)
        return {}

    async def _erase_conversations(self, user_id: str) -> dict[str, int]:
        removed: Counter[str] = Counter()
        while True:
            async with self._database.session() as db:
                query = select(ChatSession.id).where(ChatSession.user_id == user_id).limit(BATCH)
                ids = list(await db.scalars(query))
            if not ids:
                return dict(removed)
            removed.update(
                await erase_sessions(
                    self._database, self._queue, ids, still=ChatSession.user_id == user_id
                )
            )

    async def _erase_cached_answers(self, user_id: str) -> dict[str, int]:
        if self._cache is None:
            return {}
        return {"cached_answers": await self._cache.forget_owner(user_id)}


async def erase_sessions(
    database: Database,
    queue: TaskQueue | None,
    session_ids: list[uuid.UUID],
    *,
    still: ColumnElement[bool],
) -> dict[str, int]:
    """Erases those of these sessions for which `still` holds when they are deleted, with their
    messages (the foreign key cascades) and their recent answers' queued jobs."""
    async with database.session() as db:
        tasks = 0
        if queue is not None:
            answers = select(Message.id).where(
                Message.session_id.in_(session_ids), Message.role == "assistant",
                Message.created_at >= utcnow() - JOB_LIFETIME,
            )  # fmt: skip
            tasks = await queue.forget_answers(list(await db.scalars(answers)))
        erased = delete(ChatSession).where(ChatSession.id.in_(session_ids), still)
        rows: list[Any] = list(
            await db.execute(erased.returning(ChatSession.id, ChatSession.message_count))
        )
        await db.commit()
    return {
        "sessions": len(rows),
        "messages": sum(row.message_count for row in rows),
        "tasks": tasks,
    }
