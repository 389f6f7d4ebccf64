"""Trying an assistant before saving it: one question answered by the live assistant and by a
draft of it at once, each whole (not streamed), through the same engine call as a client
dialect's (`call.py`: the guards, the engine chain, the prompt, the knowledge bases, the context
window, the caller's token limit). Nothing is stored and no answer cache is asked. A side that
fails (its engine, its guards, its time) says so in its own `error`; the other still answers."""

from __future__ import annotations

import asyncio

from chatgate.assistants.schemas import Assistant, TriedAnswer, TriedError, TryResult
from chatgate.auth.service import User
from chatgate.core.errors import AppError
from chatgate.core.parts import Parts
from chatgate.dialects.call import call_assistant
from chatgate.dialects.stream import whole_answer
from chatgate.providers.base import ChatTurn, CompletionRequest

# The longest a side may take, whatever its engines' own timeouts add up to along a chain.
TRY_SECONDS = 120.0


async def try_both(
    parts: Parts, user: User, *, live: Assistant, draft: Assistant, question: str
) -> TryResult:
    live_side, draft_side = await asyncio.gather(
        try_one(parts, user, live, question), try_one(parts, user, draft, question)
    )
    return TryResult(live=live_side, draft=draft_side)


async def try_one(parts: Parts, user: User, assistant: Assistant, question: str) -> TriedAnswer:
    # max_tokens 0: the assistant's own limit (call.py takes the caller's when there is one).
    asked = CompletionRequest(
        model=assistant.id, messages=[ChatTurn("user", question)], max_tokens=0, stream=False
    )
    try:
        async with asyncio.timeout(TRY_SECONDS):
            call = await call_assistant(parts, user, assistant, asked, surface="try")
            answer = await whole_answer(call)
    except AppError as error:
        return TriedAnswer(error=TriedError(code=error.code, message=error.message))
    except TimeoutError:
        message = f"no answer within {TRY_SECONDS:g} seconds"
        return TriedAnswer(error=TriedError(code="upstream_timeout", message=message))
    return TriedAnswer(
        answer=answer.text,
        model=answer.model or call.request.model,
        engine=answer.source.provider,
        usage=answer.usage.as_dict(),
    )
