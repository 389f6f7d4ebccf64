"""An engine's answer for any dialect: a stream started, or the whole answer gathered."""

from __future__ import annotations

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
    first = await anext(chunks, None)
    if first is None:
        raise AppError("the engine returned no answer", code="upstream_error", status=502)
    source = Provenance(call.provider.id)
    source.see(first)
    return first, chunks, {**SSE_HEADERS, **answer_headers(source), **call.guard.marks}


async def whole_answer(call: EngineCall) -> AnswerSoFar:
    """The engine's whole answer, gathered; the caller's tokens charged with what it used."""
    answer = AnswerSoFar(call.provider.id)
    async for chunk in call.provider.stream(call.request):
        answer.see(chunk)
    await call.meter.charge(answer.usage, answer.text)
    return answer
