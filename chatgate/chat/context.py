"""The context window: system prompt plus the newest whole messages that fit the budget.

Built from the token counts stored on each message, so history is never re-tokenised.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.chat.models import Message
from chatgate.core.config import AssistantConfig
from chatgate.core.errors import TooLarge
from chatgate.providers.base import ChatTurn

# Chat templates wrap each message in a few tokens of markup (role name, separators).
MESSAGE_OVERHEAD = 4
# How far back a context may reach, whatever the budget; bounds the work on very long sessions.
MAX_CONTEXT_MESSAGES = 400
CONTEXT_STATUSES = ("complete", "interrupted")


def history_budget(assistant: AssistantConfig, *, system_tokens: int, user_tokens: int) -> int:
    """Tokens left for earlier messages; refuses a message that cannot fit on its own."""
    fixed = system_tokens + 2 * MESSAGE_OVERHEAD
    room = assistant.max_context_tokens - assistant.max_answer_tokens - fixed
    if user_tokens > room:
        raise TooLarge(
            f"the message is about {user_tokens} tokens; assistant {assistant.id!r} can take "
            f"at most {max(room, 0)} in one message",
            code="context_length_exceeded",
        )
    return room - user_tokens


async def load_context(db: AsyncSession, *, session_id: uuid.UUID, budget: int) -> list[ChatTurn]:
    """The newest messages whose running token total stays within `budget`, oldest first."""
    recent = (
        select(
            Message.id,
            Message.role,
            Message.content,
            Message.token_count,
            Message.tool_calls,
            Message.tool_call_id,
        )
        .where(
            Message.session_id == session_id,
            Message.status.in_(CONTEXT_STATUSES),
            (Message.content != "") | Message.tool_calls.is_not(None),
            # A canned "busy" answer came from no engine: it is not part of the conversation.
            ~(Message.fallback & Message.provider.is_(None)),
        )
        .order_by(Message.id.desc())
        .limit(MAX_CONTEXT_MESSAGES)
        .subquery()
    )
    running = func.sum(recent.c.token_count + MESSAGE_OVERHEAD).over(order_by=recent.c.id.desc())
    ranked = select(
        recent.c.id, recent.c.role, recent.c.content, recent.c.tool_calls, recent.c.tool_call_id,
        running.label("used"),
    ).subquery()  # fmt: skip
    query = (
        select(ranked.c.role, ranked.c.content, ranked.c.tool_calls, ranked.c.tool_call_id)
        .where(ranked.c.used <= budget)
        .order_by(ranked.c.id)
    )
    return [as_text_turn(row) for row in await db.execute(query)]


def as_text_turn(row: Row[Any, Any, Any, Any]) -> ChatTurn:
    """A stored message as a turn of text: calls of tools and their results (recorded by the
    Responses API) are told in words, so that any engine, with tools or without, can go on."""
    if row.role == "tool":
        return ChatTurn("user", f"[result of tool call {row.tool_call_id}]\n{row.content}")
    if row.role == "agent":
        # A person's reply during a hand-off spoke for the service: the assistant goes on
        # from it as from its own words.
        return ChatTurn("assistant", row.content)
    if not row.tool_calls:
        return ChatTurn(role=row.role, content=row.content)
    calls = "\n".join(
        f"[called tool {call['name']} ({call['id']}) with {call['arguments']}]"
        for call in row.tool_calls
    )
    return ChatTurn(row.role, f"{row.content}\n{calls}" if row.content else calls)


def build_messages(
    assistant: AssistantConfig, history: list[ChatTurn], content: str, knowledge: str | None = None
) -> list[ChatTurn]:
    """The engine's messages: the assistant's system prompt, then the knowledge base's passages
    (their own system message, so the assistant's prompt keeps its place), history, message."""
    system = [ChatTurn("system", assistant.system_prompt)] if assistant.system_prompt else []
    if knowledge:
        system.append(ChatTurn("system", knowledge))
    return [*system, *history, ChatTurn("user", content)]
