"""Sessions, history and messages: thin HTTP over chat.service and chat.turns."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import Row

from chatgate.assistants.deps import Catalog
from chatgate.auth.deps import CurrentUser
from chatgate.cache.deps import CacheControl, cache_headers
from chatgate.chat import service
from chatgate.chat.answers import TurnEnd
from chatgate.chat.deps import Handoffs, OwnedSession, Turns
from chatgate.chat.events import format_event, resume_events
from chatgate.chat.handoffs import HeldTurn
from chatgate.chat.models import ChatSession, Message
from chatgate.chat.prepare import Ask
from chatgate.chat.schemas import (
    NO_NUL,
    HandoffState,
    HistoryAppend,
    HistoryPage,
    MessageOut,
    ResponseMode,
    SendMessage,
    SendResult,
    SessionCreate,
    SessionOut,
    SessionPage,
    SessionUpdate,
    StopResult,
    SwitchAssistant,
    SwitchResult,
)
from chatgate.chat.sse import answer_events
from chatgate.chat.streamlog import LogEvent
from chatgate.chat.turns import Turn
from chatgate.core.deps import DbSession, SettingsDep
from chatgate.core.errors import AppError, NotFound, error_body
from chatgate.core.ids import parse_id
from chatgate.core.responses import SSE_HEADERS, JSONBytes
from chatgate.handoff.service import handoffs_of
from chatgate.providers.deps import Providers

router = APIRouter(prefix="/v1", tags=["chat"])
# The keys of a history message, in the order of service.HISTORY_COLUMNS.
MESSAGE_FIELDS = tuple(MessageOut.model_fields)


@router.post("/sessions", response_model=SessionOut, status_code=201)
async def create_session(
    body: SessionCreate, db: DbSession, user: CurrentUser, catalog: Catalog, response: Response
) -> SessionOut:
    await catalog.get(body.assistant_id)
    session, created = await service.create_session(
        db, user=user, assistant_id=body.assistant_id, session_id=body.id, title=body.title
    )
    if not created:
        response.status_code = 200
    return (await _sessions_out(db, [session]))[0]


@router.get("/sessions", response_model=SessionPage)
async def list_sessions(
    db: DbSession,
    user: CurrentUser,
    assistant_id: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> SessionPage:
    sessions, next_cursor = await service.list_sessions(
        db, user=user, assistant_id=assistant_id, limit=limit, cursor=cursor
    )
    return SessionPage(
        data=await _sessions_out(db, sessions),
        has_more=next_cursor is not None,
        next_cursor=next_cursor,
    )


@router.get("/sessions/{session_id}", response_model=SessionOut)
async def get_session(session: OwnedSession, db: DbSession) -> SessionOut:
    return (await _sessions_out(db, [session]))[0]


@router.patch("/sessions/{session_id}", response_model=SessionOut)
async def rename_session(body: SessionUpdate, session: OwnedSession, db: DbSession) -> SessionOut:
    renamed = await service.rename_session(db, session=session, title=body.title)
    return (await _sessions_out(db, [renamed]))[0]


async def _sessions_out(db: DbSession, sessions: list[ChatSession]) -> list[SessionOut]:
    """Sessions' JSON with their hand-offs to a person (one query for the lot)."""
    handoffs = await handoffs_of(db, [s.id for s in sessions])
    return [SessionOut.of(s, handoffs.get(s.id)) for s in sessions]


@router.delete("/sessions/{session_id}", status_code=204)
async def delete_session(
    session: OwnedSession, db: DbSession, user: CurrentUser, turns: Turns
) -> Response:
    if turn := turns.running(session.id):
        turn.stop("stopped")
        await turn.result()
    await service.delete_session(db, user=user, session=session)
    return Response(status_code=204)


@router.post("/switch-assistant", response_model=SwitchResult)
async def switch_assistant(
    body: SwitchAssistant, db: DbSession, user: CurrentUser, catalog: Catalog
) -> SwitchResult:
    await catalog.get(body.assistant_id)
    session, created = await service.switch_assistant(db, user=user, assistant_id=body.assistant_id)
    return SwitchResult(session=(await _sessions_out(db, [session]))[0], created=created)


@router.get("/history/{session_id}", response_model=HistoryPage)
async def read_history(
    session_id: str,
    db: DbSession,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: str | None = None,
) -> Response:
    # The hottest read in the service: ownership is checked inside the page's one query (see
    # service.history_page) rather than by OwnedSession, and rows go straight to JSON.
    session_uuid = parse_id(session_id, what="session_id")
    before_id = parse_id(before, what="before") if before else None
    page, next_before = await service.history_page(
        db, user=user, session_id=session_uuid, limit=limit, before=before_id
    )
    body = {
        "session_id": str(session_uuid),
        "data": [_message_json(row) for row in page],
        "has_more": next_before is not None,
        "next_before": str(next_before) if next_before else None,
    }
    # OPT_UTC_Z writes UTC times as pydantic does ("...Z"), so the JSON equals MessageOut's.
    return Response(orjson.dumps(body, option=orjson.OPT_UTC_Z), media_type="application/json")


def _message_json(row: Row[Any]) -> dict[str, Any]:
    """MessageOut's JSON from a row of service.HISTORY_COLUMNS, without a model per message."""
    item = dict(zip(MESSAGE_FIELDS, row, strict=True))
    item["id"] = str(item["id"])
    item["session_id"] = str(item["session_id"])
    return item


@router.post("/history", response_model=MessageOut, status_code=201)
async def append_history(
    body: HistoryAppend,
    db: DbSession,
    user: CurrentUser,
    settings: SettingsDep,
    catalog: Catalog,
    providers: Providers,
) -> MessageOut:
    service.check_content(body.content, settings)
    service.check_recorded_role(user, body.role)
    session = await service.get_owned_session(db, user=user, session_id=body.session_id)
    provider = providers.for_assistant(await catalog.get(session.assistant_id))
    message = await service.append_message(
        db,
        session=session,
        role=body.role,
        content=body.content,
        token_count=await provider.count_tokens_async(body.content),
    )
    return MessageOut.of(message)


def _failure(end: TurnEnd, **extra: Any) -> JSONBytes:
    assert end.error is not None
    body = error_body(end.error.code, end.error.message)
    return JSONBytes(
        {**body, "message": MessageOut.of(end.message).model_dump(mode="json"), **extra},
        status_code=end.error.status,
        headers=end.error.headers,
    )


@router.post(
    "/sessions/{session_id}/messages",
    response_model=SendResult,
    responses={202: {"description": "async: the task id to poll"}},
)
async def send_message(
    body: SendMessage,
    session: OwnedSession,
    user: CurrentUser,
    settings: SettingsDep,
    catalog: Catalog,
    turns: Turns,
    cache: CacheControl,
    handoffs: Handoffs,
) -> Response:
    service.check_content(body.content, settings)
    assistant = await catalog.get(session.assistant_id)
    ask = Ask(
        user=user, session=session, assistant=assistant, content=body.content, cache=cache,
        inputs=body.inputs,
    )  # fmt: skip
    if (held := await handoffs.intercept(ask)) is not None:
        return _held(held, body.response_mode)
    if body.response_mode == "async" and turns.queue is not None:
        async with handoffs.watching_guards(ask):
            prepared = await turns.submit(ask)
        task = {"task_id": str(prepared.answer.id), "message_id": str(prepared.answer.id)}
        marks = {**cache_headers(prepared.cache), **prepared.guard_marks}
        return JSONBytes(task, status_code=202, headers=marks)
    async with handoffs.watching_guards(ask):
        turn: Turn = await turns.begin(ask)
    marks = {**cache_headers(turn.cache), **turn.guard_marks}
    if body.response_mode == "async":
        task = {"task_id": str(turn.answer.id), "message_id": str(turn.answer.id)}
        return JSONBytes(task, status_code=202, headers=marks)
    if body.response_mode == "streaming":
        # Wait for the first token, so an engine that fails before answering gets its own status.
        await turn.first_output.wait()
        if turn.task and turn.task.done() and turn.task.result().error and not turn.answer.content:
            return _failure(turn.task.result())
        return StreamingResponse(
            answer_events(turn), media_type="text/event-stream", headers={**SSE_HEADERS, **marks}
        )
    end = await turn.result()
    if end.error is not None:
        return _failure(end, user_message=MessageOut.of(turn.user_message).model_dump(mode="json"))
    return JSONBytes(
        SendResult(
            user_message=MessageOut.of(turn.user_message), message=MessageOut.of(end.message)
        ).model_dump(mode="json"),
        headers=marks,
    )


def _held(held: HeldTurn, mode: ResponseMode) -> Response:
    """A message a person answers, not the assistant: its JSON (any mode: no task to wait for),
    or for a streamed send an event stream of one `handoff` event, which ends it."""
    body = SendResult(
        user_message=MessageOut.of(held.user_message),
        message=MessageOut.of(held.notice) if held.notice is not None else None,
        handoff=HandoffState.of(held.handoff),
    ).model_dump(mode="json")
    if mode != "streaming":
        return JSONBytes(body)
    event = format_event(LogEvent(1, "handoff", body))
    return StreamingResponse(iter([event]), media_type="text/event-stream", headers=SSE_HEADERS)


@router.post("/sessions/{session_id}/stop", response_model=StopResult)
async def stop_answer(session: OwnedSession, db: DbSession, turns: Turns) -> StopResult:
    if turn := turns.running(session.id):
        turn.stop("stopped")
        end = await turn.result()
        return StopResult(stopped=True, message=MessageOut.of(end.message))
    answer = await service.streaming_answer(db, session_id=session.id)
    if answer is None or not turns.stops_elsewhere:
        return StopResult(stopped=False)
    # Whether it stopped shows in the stored answer, whoever wrote it (a replica, a worker).
    ended = await turns.stop_elsewhere(answer.id)
    if ended is None or ended.status == "streaming":
        return StopResult(stopped=False)
    return StopResult(stopped=True, message=MessageOut.of(ended))


TASK_STATUS = {
    "streaming": "running",
    "complete": "succeeded",
    "failed": "failed",
    "interrupted": "failed",
}


@router.get("/tasks/{task_id}")
async def get_task(task_id: str, db: DbSession, user: CurrentUser, turns: Turns) -> dict[str, Any]:
    message = await service.get_owned_answer(
        db, user=user, message_id=parse_id(task_id, what="task_id")
    )
    status = TASK_STATUS[message.status]
    queue = turns.queue
    if message.status == "streaming" and queue is not None:
        status = await queue.status(message.id) or status
    return {
        "task_id": task_id,
        "status": status,
        "message": MessageOut.of(message).model_dump(mode="json"),
    }


# Resuming an answer's stream from any process (API.md, "Resuming a stream").
EVENTS_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "the answer's events"}
}
LastEventId = Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)]
After = Annotated[int | None, Query(ge=0, description="resume after this event id")]


@router.get(
    "/sessions/{session_id}/messages/{message_id}/events",
    response_class=StreamingResponse,
    responses=EVENTS_ANSWER,
)
async def resume_answer(
    session: OwnedSession,
    message_id: str,
    db: DbSession,
    turns: Turns,
    last_event_id: LastEventId = None,
    after: After = None,
) -> StreamingResponse:
    answer = await db.get(Message, parse_id(message_id, what="message_id"))
    if answer is None or answer.session_id != session.id or answer.role != "assistant":
        raise NotFound("message not found", code="message_not_found")
    return _events(turns, answer, _resume_after(last_event_id, after))


@router.get("/tasks/{task_id}/events", response_class=StreamingResponse, responses=EVENTS_ANSWER)
async def resume_task(
    task_id: str,
    db: DbSession,
    user: CurrentUser,
    turns: Turns,
    last_event_id: LastEventId = None,
    after: After = None,
) -> StreamingResponse:
    answer = await service.get_owned_answer(
        db, user=user, message_id=parse_id(task_id, what="task_id")
    )
    return _events(turns, answer, _resume_after(last_event_id, after))


def _events(turns: Turns, answer: Message, after: int) -> StreamingResponse:
    # The stream outlives the request's database session: it reads through its own.
    events = resume_events(log=turns.log, database=turns.database, answer=answer, after=after)
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)


def _resume_after(last_event_id: str | None, after: int | None) -> int:
    """The header wins over the query, as a browser's EventSource sends it on reconnecting."""
    if last_event_id is None or not last_event_id.strip():
        return after or 0
    try:
        value = int(last_event_id)
    except ValueError:
        value = -1
    if value < 0:
        raise AppError(
            "Last-Event-ID must be the id of an event: a whole number",
            code="invalid_last_event_id", status=400,
        )  # fmt: skip
    return value
