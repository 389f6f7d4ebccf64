"""`POST /v1/qa`: the simplest call for a business backend, one question in, one answer out."""

from __future__ import annotations

from fastapi import APIRouter, Response

from chatgate.assistants.deps import Catalog
from chatgate.auth.deps import CurrentUser
from chatgate.auth.service import acting_user
from chatgate.cache.deps import CacheControl, cache_headers
from chatgate.chat import service
from chatgate.chat.deps import Turns
from chatgate.chat.prepare import Ask
from chatgate.chat.schemas import MessageOut
from chatgate.core.deps import DbSession, SettingsDep
from chatgate.core.errors import AppError, BadRequest
from chatgate.core.tracing import current_trace_id
from chatgate.qa.schemas import Answer, Question

router = APIRouter(prefix="/v1", tags=["qa"])


@router.post("/qa", response_model=Answer)
async def ask(
    body: Question,
    caller: CurrentUser,
    db: DbSession,
    settings: SettingsDep,
    catalog: Catalog,
    turns: Turns,
    cache: CacheControl,
    response: Response,
) -> Answer:
    service.check_content(body.question, settings)
    user = acting_user(caller, body.user_id)
    if body.session_id is not None:
        session = await service.get_owned_session(db, user=user, session_id=body.session_id)
        if body.assistant_id and body.assistant_id != session.assistant_id:
            raise BadRequest(
                f"session {session.id} belongs to assistant {session.assistant_id!r}",
                code="assistant_mismatch",
            )
        assistant = await catalog.get(session.assistant_id)
    else:
        assistant_id = body.assistant_id or settings.default_assistant or settings.assistants[0].id
        assistant = await catalog.get(assistant_id)
        session, _ = await service.create_session(db, user=user, assistant_id=assistant.id)
    ask = Ask(
        user=user, session=session, assistant=assistant, content=body.question, cache=cache,
        inputs=body.inputs, route="qa",
    )  # fmt: skip
    turn = await turns.begin(ask)
    response.headers.update({**cache_headers(turn.cache), **turn.guard_marks})
    end = await turn.result()
    if end.error is not None:
        raise end.error
    if end.message.status != "complete":
        raise AppError(
            "the answer was stopped before it finished", code="answer_interrupted", status=409
        )
    return Answer(
        answer=end.message.content, trace_id=current_trace_id(), session_id=str(session.id),
        cached=bool(end.message.cached), citations=MessageOut.of(end.message).citations,
    )  # fmt: skip
