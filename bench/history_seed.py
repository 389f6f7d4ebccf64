"""The data of the history benchmark (`history.py`): one user's sessions of SHORT and LONG
messages of plausible lengths, written straight into a migrated PostgreSQL database with COPY.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from chatgate.core.ids import new_id
from chatgate.providers.base import estimate_tokens

USER = "local"  # the one user of auth mode `none`
ASSISTANT = "helper"
SHORT, LONG = 10, 10_000
WORD_TEXT = (
    "order shipping parcel refund invoice address delivery tracking number week customer "
    "warehouse return label payment card bank account support answer question please thanks "
    "the a of to and in is it that for on with as was at by this be are from or have not"
)
WORDS = WORD_TEXT.split()


@dataclass
class Seeded:
    short_id: uuid.UUID
    long_id: uuid.UUID
    short_ids: list[uuid.UUID]
    long_ids: list[uuid.UUID]


def _text(rng: random.Random, low: int, high: int) -> str:
    target = rng.randint(low, high)
    words: list[str] = []
    size = 0
    while size < target:
        word = rng.choice(WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words).capitalize() + "."


def _messages(session_id: uuid.UUID, count: int, rng: random.Random) -> list[tuple[object, ...]]:
    """Alternating user/assistant rows, ids made by new_id() in creation order."""
    start = datetime.now(UTC) - timedelta(seconds=30 * count)
    rows: list[tuple[object, ...]] = []
    for i in range(count):
        user_turn = i % 2 == 0
        content = _text(rng, 40, 400) if user_turn else _text(rng, 200, 1200)
        tokens = estimate_tokens(content)
        stamp = start + timedelta(seconds=30 * i)
        usage = (
            None
            if user_turn
            else json.dumps(
                {"prompt_tokens": 200, "completion_tokens": tokens, "total_tokens": 200 + tokens}
            )
        )
        rows.append(
            (
                new_id(),
                session_id,
                "user" if user_turn else "assistant",
                content,
                "complete",
                tokens,
                None if user_turn else "smollm2-135m-instruct",
                usage,
                None,
                None,
                stamp,
                stamp,
            )
        )
    return rows


MESSAGE_COLUMNS = [
    "id", "session_id", "role", "content", "status", "token_count", "model", "usage", "error",
    "trace_id", "created_at", "updated_at",
]  # fmt: skip


async def seed(dsn: str) -> Seeded:
    rng = random.Random(7)
    conn = await asyncpg.connect(dsn)
    try:
        ids: dict[int, list[uuid.UUID]] = {}
        sessions: dict[int, uuid.UUID] = {}
        for count in (SHORT, LONG):
            session_id = new_id()
            rows = _messages(session_id, count, rng)
            now = datetime.now(UTC)
            await conn.execute(
                "INSERT INTO sessions (id, user_id, assistant_id, title, message_count, "
                "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
                session_id, USER, ASSISTANT, f"bench {count}", count, now,
            )  # fmt: skip
            await conn.copy_records_to_table("messages", records=rows, columns=MESSAGE_COLUMNS)
            sessions[count] = session_id
            ids[count] = [row[0] for row in rows]  # type: ignore[misc]
            assert ids[count] == sorted(ids[count]), "new_id() must sort in creation order"
        await conn.execute("ANALYZE sessions; ANALYZE messages")
    finally:
        await conn.close()
    return Seeded(sessions[SHORT], sessions[LONG], ids[SHORT], ids[LONG])
