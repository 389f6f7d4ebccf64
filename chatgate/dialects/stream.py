"""An engine's answer for any dialect: a stream started, or the whole answer gathered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from chatgate.core.errors import AppError
from chatgate.core.responses import SSE_HEADERS
from chatgate.dialects.answer import AnswerSoFar
from chatgate.dialects.call import EngineCall
from chatgate.dialects.marks import answer_headers
from chatgate.providers.base import Chunk
from chatgate.providers.fallback import Provenance


async def open_stream(call: EngineCall) -> tuple[Chunk, AsyncIterator[Chunk], dict[str, str]]:
    """The engine's stream with its first piece read, and the stream's headers. The first piece
    comes before the headers, so an engine that fails early gets its status; and the fallback
    chain's first piece already comes from the engine (or answer) that answers, which the
    headers name."""
    chunks = call.provider.stream(call.request)
    try:
        first = await anext(chunks, None)
    except BaseException:
        if call.meter.reservation is not None:  # a shield is a task: only when one is held
            await asyncio.shield(call.meter.settle())
        raise
    if first is None:
        await call.meter.settle()
        raise AppError("the engine returned no answer", code="upstream_error", status=502)
    source = Provenance(call.provider.id)
    source.see(first)
    return first, chunks, {**SSE_HEADERS, **answer_headers(source), **call.guard.marks}


async def whole_answer(call: EngineCall) -> AnswerSoFar:
    """The engine's whole answer, gathered; the caller's tokens charged with what it used."""
    answer = AnswerSoFar(call.provider.id)
    try:
        async for chunk in call.provider.stream(call.request):
            answer.see(chunk)
    finally:
        # A failed or cancelled call ends its reservation with what came (the charge below
        # then settles nothing more). A shield is a task: only when a reservation is held.
        if call.meter.reservation is not None:
            await asyncio.shield(call.meter.settle(answer.usage, answer.text))
    await call.meter.charge(answer.usage, answer.text)
    return answer
