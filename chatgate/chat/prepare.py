"""Preparing a turn: from a user's message to an engine request, in named steps.

`choose_engine` → `admit` (the user's token limit) → `context_room` → `retrieve` (the knowledge
bases' passages, fitted first) → `build_context` (history in what is left) → `guard_ask` →
`consult_cache` → `store_turn` (both messages) → `engine_request`. The user's message and an empty
`streaming` answer (with its citations) are durable before any engine is called; a guard's block
stores only its audit event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.auth.service import User
from chatgate.budgets.service import Budgets
from chatgate.budgets.store import Reservation
from chatgate.cache.service import AnswerCache, CacheDirective, CachePlan
from chatgate.chat.answers import recover_unfinished_answers
from chatgate.chat.context import MESSAGE_OVERHEAD, build_messages, history_budget, load_context
from chatgate.chat.grounding import Grounding, fit_passages, knowledge_message
from chatgate.chat.models import ChatSession, Message
from chatgate.chat.service import TITLE_LENGTH, bump_session
from chatgate.core.config import AssistantConfig
from chatgate.core.db import Database
from chatgate.core.errors import Conflict
from chatgate.core.ids import new_id
from chatgate.core.time import utcnow
from chatgate.core.tracing import current_trace_id
from chatgate.guards.service import TurnGuard, guard_turn, inspect_off_loop
from chatgate.knowledge.retrieval import Retriever
from chatgate.providers.base import ChatTurn, CompletionRequest, Provider
from chatgate.providers.registry import ProviderRegistry
from chatgate.ratelimit.service import RateLimiter
from chatgate.usage.ledger import Ledger


@dataclass(frozen=True, slots=True)
class Ask:
    """A user's message to the assistant of one of their sessions, as a route hands it over."""

    user: User
    session: ChatSession
    assistant: AssistantConfig
    content: str
    cache: CacheDirective = "use"
    # A Dify app's input variables, as the caller gave them (other engines ignore them).
    inputs: dict[str, Any] = field(default_factory=dict)
    # The route asked, as the usage ledger names it ("chat", "qa").
    route: str = "chat"


@dataclass(slots=True)
class PreparedTurn:
    user_message: Message
    answer: Message
    request: CompletionRequest
    provider: Provider
    cache: CachePlan | None = None
    # Masked values to put back into the answer, known to this process only (never queued).
    restores: bool = False
    # What the guards did, for the caller (`X-Chatgate-Guard`).
    guard_marks: dict[str, str] = field(default_factory=dict)
    # The caller's budgets' hold on this answer, settled by whoever writes it.
    reservation: Reservation | None = None


@dataclass(frozen=True, slots=True)
class TurnParts:
    """What preparing a turn uses of the runtime."""

    database: Database
    providers: ProviderRegistry
    limiter: RateLimiter | None
    cache: AnswerCache | None
    retriever: Retriever | None = None
    ledger: Ledger | None = None
    budgets: Budgets | None = None


def turn_in_progress() -> Conflict:
    return Conflict(
        "an answer is still being written in this session; stop it or wait",
        code="turn_in_progress",
    )


async def prepare_turn(ask: Ask, parts: TurnParts) -> PreparedTurn:
    provider = choose_engine(ask, parts.providers)
    user_tokens = await provider.count_tokens_async(ask.content)
    await admit(ask, user_tokens, parts.limiter)
    trace_id = current_trace_id() or None
    room = await context_room(ask, provider, user_tokens)
    grounding = await retrieve(ask, parts.retriever, provider, room=room)
    async with parts.database.session() as db:
        history = await build_context(db, ask, budget=room - grounding.tokens)
        guard, knowledge = await guard_ask(db, ask, history, grounding)
        if guard.private:
            provider = choose_engine(ask, parts.providers, private=True)
        engine_state = dict((ask.session.provider_state or {}).get(provider.id, {}))
        # Nothing earlier for the engine to see, nothing personal, no knowledge base whose
        # documents may change under the question: the cache may answer.
        context_free = (
            not history and not engine_state and not guard.personal
            and not ask.assistant.knowledge_bases and not ask.inputs
        )  # fmt: skip
        plan = await consult_cache(ask, provider, parts.cache) if context_free else None
        user_message, answer = new_messages(ask, user_tokens, trace_id, grounding)
        cached = await cached_answer(plan, provider)
        reservation = await reserve_budget(
            ask, parts.budgets, provider, answer, prompt=(user_tokens, grounding, history)
        )
        try:
            await store_turn(db, parts.database, ask, user_message, answer, cached=cached)
        except BaseException:
            await release_budget(parts.budgets, reservation)
            raise
    if cached is not None:  # a cached answer costs nothing
        await release_budget(parts.budgets, reservation)
        reservation = None
        note_cached(ask, parts.ledger, prompt_tokens=user_tokens, answer_tokens=cached[1])
    request = engine_request(ask, guard, engine_state, trace_id, knowledge)
    return PreparedTurn(
        user_message=user_message, answer=answer, request=request, provider=guard.wrap(provider),
        cache=plan, restores=guard.restores, guard_marks=guard.outcome.marks,
        reservation=reservation,
    )  # fmt: skip


def choose_engine(ask: Ask, providers: ProviderRegistry, *, private: bool = False) -> Provider:
    """The assistant's engine (its private one when a guard routes personal data there),
    wrapped in its fallback chain."""
    return providers.for_assistant(ask.assistant, private=private)


async def admit(ask: Ask, user_tokens: int, limiter: RateLimiter | None) -> None:
    """The user's tokens-per-minute limit, with the message's own tokens as the estimate."""
    if limiter is not None:
        await limiter.check_tokens(
            user=ask.user.id, assistant=ask.assistant.id, estimate=user_tokens
        )


async def reserve_budget(
    ask: Ask,
    budgets: Budgets | None,
    provider: Provider,
    answer: Message,
    *,
    prompt: tuple[int, Grounding, list[ChatTurn]],
) -> Reservation | None:
    """The caller's budgets (none, mostly: then nothing is counted or asked): the whole prompt
    (the message, passages, history and system prompt) and the longest answer, held."""
    if budgets is None:
        return None
    allowances = await budgets.applying(user_id=ask.user.id, key_id=ask.user.key_id)
    if not allowances:
        return None
    user_tokens, grounding, history = prompt
    others = "".join(turn.content for turn in history) + ask.assistant.system_prompt
    counted = await provider.count_tokens_async(others)
    prompt_tokens = user_tokens + grounding.tokens + counted + MESSAGE_OVERHEAD * (len(history) + 2)
    return await budgets.reserve(
        allowances, model=ask.assistant.model, prompt_tokens=prompt_tokens,
        answer_tokens=ask.assistant.max_answer_tokens, reservation_id=answer.id.hex,
    )  # fmt: skip


async def release_budget(budgets: Budgets | None, reservation: Reservation | None) -> None:
    if budgets is not None:
        await budgets.release(reservation)


async def context_room(ask: Ask, provider: Provider, user_tokens: int) -> int:
    """Tokens of the assistant's context left beside its prompt, the message and the answer;
    refuses a message that cannot fit on its own."""
    system_tokens = await provider.count_tokens_async(ask.assistant.system_prompt)
    return history_budget(ask.assistant, system_tokens=system_tokens, user_tokens=user_tokens)


async def retrieve(
    ask: Ask, retriever: Retriever | None, provider: Provider, *, room: int
) -> Grounding:
    """The assistant's knowledge bases' best passages for the message, as many whole ones as
    fit in `room`. The query is the message as the guards let it go (masked); a message they
    block retrieves nothing (`guard_ask` refuses it)."""
    if not ask.assistant.knowledge_bases or retriever is None:
        return Grounding()
    outcome = await inspect_off_loop(ask.assistant.guards, [("user", ask.content)])
    if outcome.blocked:
        return Grounding()
    passages = await retriever.retrieve(ask.assistant.knowledge_bases, outcome.texts[0])
    return await fit_passages(passages, room=room, counter=provider)


async def build_context(db: AsyncSession, ask: Ask, *, budget: int) -> list[ChatTurn]:
    """The newest earlier messages that fit in `budget` tokens."""
    return await load_context(db, session_id=ask.session.id, budget=budget)


async def guard_ask(
    db: AsyncSession, ask: Ask, history: list[ChatTurn], grounding: Grounding
) -> tuple[TurnGuard, str | None]:
    """The assistant's guards over the passages, the history and the message; hits are audited
    in `db`. Passages are masked like history (chatgate's own text: masked, not counted). Also
    the knowledge message as the engine is to see it (None without passages)."""
    passages = [ChatTurn("system", p.text) for p in grounding.passages]
    guard = await guard_turn(
        db, policy=ask.assistant.guards, history=[*passages, *history], content=ask.content,
        user_id=ask.user.id, assistant_id=ask.assistant.id, session_id=str(ask.session.id),
    )  # fmt: skip
    shown, guard.history = guard.history[: len(passages)], guard.history[len(passages) :]
    if not passages:
        return guard, None
    return guard, knowledge_message(grounding.passages, [t.content for t in shown])


async def consult_cache(
    ask: Ask, provider: Provider, cache: AnswerCache | None
) -> CachePlan | None:
    """The cache's plan for a context-free question: its answer on a hit, and whether the
    engine's answer may be stored."""
    if cache is None:
        return None
    return await cache.consult(
        assistant=ask.assistant, provider_id=provider.id, question=ask.content,
        directive=ask.cache, owner=ask.user.id,
    )  # fmt: skip


async def cached_answer(plan: CachePlan | None, provider: Provider) -> tuple[str, int] | None:
    """The cached answer's text and token count, on a hit."""
    if plan is None or plan.text is None:
        return None
    return plan.text, await provider.count_tokens_async(plan.text)


def note_cached(ask: Ask, ledger: Ledger | None, *, prompt_tokens: int, answer_tokens: int) -> None:
    """A cached answer in the usage ledger: no engine, no cost, its tokens as counted here."""
    if ledger is not None:
        ledger.record(
            user_id=ask.user.id, key_id=ask.user.key_id, assistant_id=ask.assistant.id,
            route=ask.route, engine=None, model=ask.assistant.model,
            prompt_tokens=prompt_tokens, completion_tokens=answer_tokens, cached=True,
        )  # fmt: skip


def new_messages(
    ask: Ask, user_tokens: int, trace_id: str | None, grounding: Grounding
) -> tuple[Message, Message]:
    """The user's message and the empty answer that the engine's text will fill, with the
    passages it is given as citations (None for an assistant without knowledge bases)."""
    now = utcnow()
    user_message = Message(
        id=new_id(), session_id=ask.session.id, role="user", content=ask.content,
        status="complete", token_count=user_tokens, trace_id=trace_id,
        created_at=now, updated_at=now,
    )  # fmt: skip
    answer = Message(
        id=new_id(), session_id=ask.session.id, role="assistant", content="",
        status="streaming", token_count=0, model=ask.assistant.model, trace_id=trace_id,
        created_at=now, updated_at=now,
        citations=grounding.citations() if ask.assistant.knowledge_bases else None,
    )  # fmt: skip
    return user_message, answer


async def store_turn(
    db: AsyncSession,
    database: Database,
    ask: Ask,
    user_message: Message,
    answer: Message,
    *,
    cached: tuple[str, int] | None,
) -> None:
    """Commits a turn's messages. The database holds one `streaming` answer per session,
    so a turn begun meanwhile by another process is refused here; an answer left streaming
    by a process that died without a restart to recover it is ended first, once.

    The answer goes in as `streaming` even when the cache answers it (`cached`: its text
    and token count), and is completed in the same transaction, so that a cached answer
    is refused too while another is being written."""
    session_id = ask.session.id
    for attempt in (1, 2):
        try:
            db.add_all([user_message, answer])
            await db.flush()
            if cached is not None:
                fill_from_cache(answer, cached[0], token_count=cached[1])
            title = ask.content.strip()[:TITLE_LENGTH]
            await db.execute(bump_session(session_id, added=2, title=title))
            await db.commit()
            return
        except IntegrityError as exc:
            await db.rollback()
            if "unique" not in str(exc.orig).lower():
                raise  # e.g. the session deleted meanwhile: not a turn in progress
            if attempt == 2 or not await recover_unfinished_answers(
                database, all_rows=False, session_id=session_id
            ):
                raise turn_in_progress() from None


def fill_from_cache(answer: Message, text: str, *, token_count: int) -> None:
    """Turns a new answer row into the cached answer, complete when its transaction commits."""
    answer.content = text
    answer.status = "complete"
    answer.token_count = token_count
    answer.cached = True


def engine_request(
    ask: Ask,
    guard: TurnGuard,
    engine_state: dict[str, str],
    trace_id: str | None,
    knowledge: str | None = None,
) -> CompletionRequest:
    """What the engine is asked: the system prompt, the passages, the guarded history and
    message."""
    return CompletionRequest(
        model=ask.assistant.model,
        messages=build_messages(ask.assistant, guard.history, guard.content, knowledge),
        max_tokens=ask.assistant.max_answer_tokens,
        temperature=ask.assistant.temperature,
        user=ask.user.id,
        trace_id=trace_id,
        session_state=engine_state,
        assistant_id=ask.assistant.id,
        inputs=dict(ask.inputs),
        key_id=ask.user.key_id,
        route=ask.route,
    )
