"""One engine call for a client's own dialect (OpenAI's chat completions and Responses,
Anthropic's Messages), whatever the dialect: the assistant named as the model, its guards over
everything the client sends, its engine chain, the parameters that chain can honour, its system
prompt, its knowledge bases' passages for the last user message (as on chatgate's own API:
chat/grounding.py), its context window, and the caller's token limit.

A dialect translates its request into a `CompletionRequest` of the client's own turns (no
system prompt, the client's wishes for length and temperature) and hands it to `open_call`;
what comes back is ready to stream.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import orjson

from chatgate.assistants.schemas import Assistant
from chatgate.assistants.service import AssistantCatalog
from chatgate.auth.service import User, acting_user
from chatgate.budgets.service import Budgets
from chatgate.budgets.store import Reservation
from chatgate.chat.context import MESSAGE_OVERHEAD
from chatgate.chat.grounding import Grounding, fit_passages, knowledge_message
from chatgate.core.db import Database
from chatgate.core.errors import AppError, NotFound
from chatgate.core.parts import Parts
from chatgate.core.tracing import current_trace_id
from chatgate.guards.service import GuardOutcome, Origin, guard_texts, inspect_off_loop
from chatgate.knowledge.retrieval import Retriever
from chatgate.providers.base import ChatTurn, CompletionRequest, Provider, Usage
from chatgate.providers.features import require_honoured
from chatgate.providers.messages import AudioPart, ImagePart, TextPart
from chatgate.providers.registry import ProviderRegistry
from chatgate.ratelimit.service import RateLimiter

# What an image or a clip of audio is counted as in the context window: OpenAI's price of a
# low-detail image. Engines count them their own way; this keeps a window from overflowing.
MEDIA_TOKENS = 85
# The usage ledger's name of each dialect's route (any other surface is its own name).
ROUTES = {"openai": "chat_completions", "responses": "responses", "anthropic": "messages"}


async def assistant_for_model(catalog: AssistantCatalog, model: str) -> Assistant:
    try:
        return await catalog.get(model)
    except NotFound:
        # Unlike OpenAI's, without the name asked for: a client may have put anything there.
        raise NotFound(
            "no model has this name (GET /v1/models lists them)", code="model_not_found"
        ) from None


@dataclass(slots=True)
class TokenMeter:
    """The user's tokens-per-minute limit with this assistant, as the session route keeps it,
    and the budgets of the user and key: checked (the budgets: reserved) before the engine is
    called, charged (settled) with what the call used after."""

    limiter: RateLimiter
    provider: Provider
    user: str
    assistant: str
    prompt_tokens: int
    budgets: Budgets | None = None
    key_id: str | None = None
    model: str = ""
    answer_tokens: int = 0
    # Held from `admit` until `settle`; None where no budget applies.
    reservation: Reservation | None = None

    async def admit(self) -> None:
        # The client sends the whole conversation each time: all of it is the estimate.
        await self.limiter.check_tokens(
            user=self.user, assistant=self.assistant, estimate=self.prompt_tokens
        )
        if self.budgets is not None:
            self.reservation = await self.budgets.reserve_for(
                user_id=self.user, key_id=self.key_id, model=self.model,
                prompt_tokens=self.prompt_tokens, answer_tokens=self.answer_tokens,
            )  # fmt: skip

    async def charge(self, usage: Usage, answer: str) -> None:
        """The usage the engine reported, or else the prompt and the answer counted here."""
        used = usage.prompt_tokens + usage.completion_tokens
        if not used:
            used = self.prompt_tokens + (self.provider.count_tokens(answer) if answer else 0)
        try:
            await self.limiter.record_tokens(user=self.user, assistant=self.assistant, tokens=used)
        finally:
            await self.settle(usage, answer)

    async def settle(self, usage: Usage | None = None, answer: str = "") -> None:
        """Ends the budgets' reservation, once, with what was used (nothing, by default): every
        way a call ends comes here, so none holds a budget longer than it runs."""
        reservation, self.reservation = self.reservation, None
        if reservation is not None and self.budgets is not None:
            counted = self.provider.count_tokens(answer) if answer else 0
            await self.budgets.settle(reservation, usage, counted)


@dataclass(frozen=True, slots=True)
class EngineCall:
    """An engine call ready to stream: `provider.stream(request)`, then `meter.charge`."""

    assistant: Assistant
    provider: Provider
    request: CompletionRequest
    meter: TokenMeter
    guard: GuardOutcome
    # API.md's `Citation`s of the passages the engine was shown, numbered as it saw them.
    citations: list[dict[str, Any]]


async def open_call(
    parts: Parts, user: User, asked: CompletionRequest, *, surface: str
) -> EngineCall:
    """The call an assistant makes of `asked` (its `model` names the assistant): guarded,
    refused by name when its engine cannot honour a parameter, fitted to the context window,
    and admitted by the caller's token limit."""
    assistant = await assistant_for_model(parts.get(AssistantCatalog), asked.model)
    if user.is_service and asked.user:
        user = acting_user(user, asked.user)
    return await call_assistant(parts, user, assistant, asked, surface=surface)


async def call_assistant(
    parts: Parts, user: User, assistant: Assistant, asked: CompletionRequest, *, surface: str
) -> EngineCall:
    """`open_call` with the assistant given (e.g. a draft of one, being tried)."""
    chain = parts.get(ProviderRegistry).for_assistant(assistant)
    # The engine's own count sizes the window; a private engine, if the guards pick one,
    # is the same assistant's and counts alike.
    fixed = await _fixed_tokens(asked, assistant=assistant, provider=chain)
    room = assistant.max_context_tokens - assistant.max_answer_tokens - fixed
    grounding = await _grounding(
        parts, asked.messages, assistant=assistant, provider=chain, room=room
    )
    turns, shown, guard = await _guarded(
        asked.messages, grounding, assistant=assistant, database=parts.get(Database), user=user,
        surface=surface,
    )  # fmt: skip
    if guard.private:
        chain = parts.get(ProviderRegistry).for_assistant(assistant, private=True)
    provider = guard.wrap(chain)
    require_honoured(asked, engine=provider.id, honours=provider.honours)
    kept, used = await _fitted(
        turns, room=room - grounding.tokens, assistant=assistant, provider=provider
    )
    system = [ChatTurn("system", assistant.system_prompt)] if assistant.system_prompt else []
    if shown is not None:
        system.append(ChatTurn("system", shown))
    wanted = asked.max_tokens or assistant.max_answer_tokens
    request = dataclasses.replace(
        asked,
        model=assistant.model,
        messages=[*system, *kept],
        max_tokens=min(wanted, assistant.max_answer_tokens),
        temperature=_temperature(asked, assistant),
        user=user.id,
        trace_id=current_trace_id() or None,
        assistant_id=assistant.id,
        key_id=user.key_id,
        route=ROUTES.get(surface, surface),
    )
    prompt_tokens = fixed + grounding.tokens + used
    meter = TokenMeter(
        parts.get(RateLimiter), provider, user.id, assistant.id, prompt_tokens,
        budgets=parts.find(Budgets), key_id=user.key_id, model=request.model,
        answer_tokens=request.max_tokens * max(request.n, 1),
    )  # fmt: skip
    await meter.admit()
    return EngineCall(assistant, provider, request, meter, guard, grounding.citations())


def _temperature(asked: CompletionRequest, assistant: Assistant) -> float | None:
    """The client's, else the assistant's; none added to a client's `top_p`: a client that
    samples by top_p chooses how (Anthropic's newer models refuse both at once)."""
    if asked.temperature is not None or asked.top_p is not None:
        return asked.temperature
    return assistant.temperature


async def _fixed_tokens(
    asked: CompletionRequest, *, assistant: Assistant, provider: Provider
) -> int:
    """What the assistant's prompt and the request's tools take of the context."""
    fixed = await provider.count_tokens_async(assistant.system_prompt) + MESSAGE_OVERHEAD
    if asked.tools:  # as the engine gets them, near enough (orjson writes dataclasses itself)
        fixed += await provider.count_tokens_async(orjson.dumps(asked.tools).decode())
    return fixed


async def _grounding(
    parts: Parts, turns: list[ChatTurn], *, assistant: Assistant, provider: Provider, room: int
) -> Grounding:
    """The passages of the assistant's knowledge bases for the last user message, as many
    whole ones as fit beside it. The query is the message as the guards let it go (masked);
    a message they block retrieves nothing (the guards then refuse it)."""
    retriever = parts.find(Retriever)
    question = next((t for t in reversed(turns) if t.role == "user"), None)
    if not assistant.knowledge_bases or retriever is None or question is None:
        return Grounding()
    outcome = await inspect_off_loop(assistant.guards, [("user", question.content)])
    if outcome.blocked:
        return Grounding()
    passages = await retriever.retrieve(assistant.knowledge_bases, outcome.texts[0])
    room -= await _turn_tokens(question, provider)
    return await fit_passages(passages, room=room, counter=provider)


async def _guarded(
    turns: list[ChatTurn],
    grounding: Grounding,
    *,
    assistant: Assistant,
    database: Database,
    user: User,
    surface: str,
) -> tuple[list[ChatTurn], str | None, GuardOutcome]:
    """The assistant's guards over every turn the client sends (it holds the whole
    conversation): its system, assistant and tool turns reach the engine too, so an injection
    in any of them is judged like one in a user message. Passages are masked like history
    (chatgate's own text: masked, not counted). The turns as the engine may see them, and the
    knowledge message (None without passages)."""
    passages: list[tuple[Origin, str]] = [("history", p.text) for p in grounding.passages]
    sent: list[tuple[Origin, str]] = [
        ("user" if t.role == "user" else "client", t.content) for t in turns
    ]
    outcome = await guard_texts(
        database,
        policy=assistant.guards,
        texts=[*passages, *sent],
        user_id=user.id,
        assistant_id=assistant.id,
        surface=surface,
    )
    shown_texts, texts = outcome.texts[: len(passages)], outcome.texts[len(passages) :]
    shown = knowledge_message(grounding.passages, shown_texts) if passages else None
    if outcome.placeholders:
        turns = [
            turn if text == turn.content else _with_text(turn, text)
            for turn, text in zip(turns, texts, strict=True)
        ]
    return turns, shown, outcome


def _with_text(turn: ChatTurn, text: str) -> ChatTurn:
    """The turn with its text replaced; its images and audio kept, after the text."""
    media = tuple(p for p in turn.parts if not isinstance(p, TextPart))
    return dataclasses.replace(turn, content=text, parts=(TextPart(text), *media) if media else ())


async def _fitted(
    turns: list[ChatTurn], *, room: int, assistant: Assistant, provider: Provider
) -> tuple[list[ChatTurn], int]:
    """The newest whole client turns that fit in `room`; and the tokens they take."""
    left = room
    kept: list[ChatTurn] = []
    for turn in reversed(turns):
        cost = await _turn_tokens(turn, provider)
        if cost > left:
            if not kept:
                raise AppError(
                    f"the last message is about {cost} tokens; model {assistant.id!r} takes at "
                    f"most {max(left, 0)}",
                    code="context_length_exceeded",
                    status=400,
                )
            break
        left -= cost
        kept.append(turn)
    kept.reverse()
    # A window that cut between a tool call and its results leaves results of no call.
    while kept and kept[0].role == "tool":
        left += await _turn_tokens(kept.pop(0), provider)
    if not kept:
        raise AppError(
            f"the conversation does not fit model {assistant.id!r}'s context window",
            code="context_length_exceeded",
            status=400,
        )
    return kept, room - left


async def _turn_tokens(turn: ChatTurn, provider: Provider) -> int:
    """The turn's text and its calls, counted in one go; its images and audio at a fixed price."""
    text = turn.content
    if turn.tool_calls:
        text += "".join(call.name + call.arguments for call in turn.tool_calls)
    cost = await provider.count_tokens_async(text) + MESSAGE_OVERHEAD
    if turn.parts:
        cost += MEDIA_TOKENS * sum(isinstance(p, ImagePart | AudioPart) for p in turn.parts)
    return cost
