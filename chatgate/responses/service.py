"""OpenAI's Responses API over any engine, stateful: a response continues the caller's stored
conversation (`previous_response_id`), which is a chatgate session; with `store` (the default)
its input and its answer are added to that session, so the history API and the web page show
them, and the response object is kept for `GET /v1/responses/{id}`.

The flow: `prepare` (refusals, the conversation so far, the engine call), then `answer_whole` or
`answer_stream`, each ending in `record` when the response is stored."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from chatgate.auth.service import User, acting_user
from chatgate.core.db import Database
from chatgate.core.errors import AppError
from chatgate.core.ids import new_id
from chatgate.core.parts import Parts
from chatgate.core.tracing import current_trace_id
from chatgate.dialects.answer import AnswerSoFar
from chatgate.dialects.call import EngineCall, open_call
from chatgate.dialects.stream import whole_answer
from chatgate.providers.base import ChatTurn, Chunk, Usage
from chatgate.providers.features import UnsupportedParameter
from chatgate.providers.messages import ToolCall
from chatgate.responses import items, objects, store
from chatgate.responses.events import Ending, response_events
from chatgate.responses.objects import Draft, ItemStatus
from chatgate.responses.schemas import ResponseRequest
from chatgate.vault.service import Vault

log = logging.getLogger("chatgate.responses")


class ModelMismatch(AppError):
    status, code = 400, "model_mismatch"
    param = "model"


@dataclass(frozen=True, slots=True)
class Prepared:
    """A response ready to be answered."""

    body: ResponseRequest
    owner: User
    call: EngineCall
    draft: Draft
    new_turns: list[ChatTurn]
    session_id: uuid.UUID | None  # None: nothing is stored
    new_session: bool


async def prepare(parts: Parts, caller: User, body: ResponseRequest) -> Prepared:
    if (param := body.refused()) is not None:
        raise UnsupportedParameter(param, "chatgate")
    owner = acting_user(caller, body.user) if caller.is_service and body.user else caller
    if owner is not caller:
        await parts.get(Vault).enter(owner.id)  # the conversation is the end user's
    new_turns = items.input_turns(body)
    earlier: store.Earlier | None = None
    if body.previous_response_id:
        async with parts.get(Database).session() as db:
            earlier = await store.earlier_turns(
                db, user=owner, response_id=body.previous_response_id
            )
        if earlier.session.assistant_id != body.model:
            raise ModelMismatch(
                f"the previous response's conversation is with model "
                f"{earlier.session.assistant_id!r}; a conversation keeps its model"
            )
    # Instructions are this response's only (OpenAI's rule): never stored, never carried on.
    instructions = [ChatTurn("system", body.instructions)] if body.instructions else []
    turns = [*instructions, *(earlier.turns if earlier else ()), *new_turns]
    _require_answered_calls(turns)
    call = await open_call(parts, owner, items.engine_request(body, turns), surface="responses")
    session_id = earlier.session.id if earlier else new_id() if body.stored else None
    draft = Draft(
        body=body,
        model=call.assistant.id,
        session_id=str(session_id) if session_id else None,
        temperature=call.request.temperature,
        citations=call.citations if call.assistant.knowledge_bases else None,
    )
    return Prepared(body, owner, call, draft, new_turns, session_id, new_session=earlier is None)


def _require_answered_calls(turns: list[ChatTurn]) -> None:
    """A function's output answers a call made before it in the conversation (as OpenAI
    checks): an engine would refuse it, with an error the client could not read as its own."""
    made: set[str] = set()
    for turn in turns:
        made.update(call.id for call in turn.tool_calls)
        if turn.role == "tool" and turn.tool_call_id not in made:
            raise AppError(
                "a function_call_output answers no function call of the conversation before it",
                code="invalid_request",
                status=400,
            )


async def usage_of(prep: Prepared, answer: AnswerSoFar, written: str) -> Usage:
    """The engine's usage, or else the prompt and the answer as counted here."""
    if answer.usage.prompt_tokens or answer.usage.completion_tokens:
        return answer.usage
    counted = await prep.call.provider.count_tokens_async(written) if written else 0
    return Usage(prep.call.meter.prompt_tokens, counted)


def _with_ids(calls: list[ToolCall]) -> list[ToolCall]:
    """Calls as the client gets them: an engine that gave a call no id gets one made here."""
    return [c if c.id else dataclasses.replace(c, id=objects.new_item_id("call")) for c in calls]


async def answer_whole(parts: Parts, prep: Prepared) -> dict[str, Any]:
    call, draft = prep.call, prep.draft
    answer = await whole_answer(call)
    choice = answer.choice(0)
    calls = _with_ids(choice.tool_calls)
    status = objects.finished(choice.finish_reason)
    item_status: ItemStatus = "completed" if status == "completed" else "incomplete"
    usage = await usage_of(prep, answer, choice.text + "".join(c.arguments for c in calls))
    response = draft.object(
        status=status, output=draft.output(choice.text, calls, status=item_status),
        usage=usage, source=answer.source,
    )  # fmt: skip
    await record(parts, prep, Ending(response, choice.text, calls))
    return response


def answer_stream(
    parts: Parts, prep: Prepared, first: Chunk, rest: AsyncIterator[Chunk]
) -> AsyncIterator[bytes]:
    call = prep.call

    async def measured(answer: AnswerSoFar, written: str) -> Usage:
        await call.meter.charge(answer.usage, written)
        return await usage_of(prep, answer, written)

    async def end(ending: Ending) -> None:
        await record(parts, prep, ending)

    return response_events(
        first, rest, draft=prep.draft, provider=call.provider.id, usage_of=measured, end=end
    )


async def record(parts: Parts, prep: Prepared, ending: Ending) -> None:
    """Stores the response and its messages when the client asked for it (`store`); never
    raises: a response that could not be stored is logged, and answered all the same."""
    if prep.session_id is None:
        return
    try:
        await _record(parts, prep, ending)
    except Exception:
        log.exception("the response %s could not be stored", prep.draft.id)


async def _record(parts: Parts, prep: Prepared, ending: Ending) -> None:
    assert prep.session_id is not None
    provider = prep.call.provider
    messages = []
    for turn in prep.new_turns:
        text = items.stored_text(turn)
        counted = await provider.count_tokens_async(
            text + "".join(c.name + c.arguments for c in turn.tool_calls)
        )
        messages.append(
            store.StoredMessage(
                role=turn.role, content=text, token_count=counted,
                tool_calls=turn.tool_calls, tool_call_id=turn.tool_call_id,
            )
        )  # fmt: skip
    response = ending.response
    status = response["status"]
    answer_counted = ending.text + "".join(c.name + c.arguments for c in ending.calls)
    messages.append(
        store.StoredMessage(
            role="assistant",
            content=ending.text,
            token_count=await provider.count_tokens_async(answer_counted),
            tool_calls=tuple(ending.calls),
            status=(
                "complete" if status in ("completed", "incomplete")
                else "failed" if status == "failed" else "interrupted"
            ),
            extra={
                "model": prep.call.request.model,
                "usage": _usage_dict(response.get("usage")),
                "provider": response["chatgate_provider"],
                "fallback": response["chatgate_fallback"],
                "trace_id": current_trace_id() or None,
                "citations": prep.draft.citations,
                "error": (
                    {"code": ending.error.code, "message": ending.error.message}
                    if ending.error else None
                ),
            },
        )
    )  # fmt: skip
    await store.save_response(
        parts.get(Database),
        user=prep.owner,
        session_id=prep.session_id,
        new_session=prep.call.assistant.id if prep.new_session else None,
        response=response,
        messages=messages,
    )


def _usage_dict(usage: dict[str, Any] | None) -> dict[str, int] | None:
    """The usage as chatgate's messages keep it (the history API's `usage`)."""
    if usage is None:
        return None
    return Usage(usage["input_tokens"], usage["output_tokens"]).as_dict()
