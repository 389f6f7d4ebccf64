"""Every engine call measured the same way: latency, time to first token, tokens, errors; and
noted in the usage ledger (chatgate/usage/), fallbacks included, with the tokens the engine
reported, or, from an engine that reports none, the prompt and the answer counted here."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatgate.core.time import utcnow
from chatgate.observability import metrics, tracing
from chatgate.observability.requests import request_stats
from chatgate.providers.base import (
    Chunk,
    CompletionRequest,
    Provider,
    ProviderError,
    Usage,
    WrappedProvider,
)

if TYPE_CHECKING:
    from chatgate.usage.ledger import Ledger


@dataclass(frozen=True, slots=True)
class _EngineMetrics:
    """One engine and model's labelled children, looked up once: `.labels()` costs µs a call."""

    requests: Any
    first_token: Any
    duration: Any
    tokens_in: Any
    tokens_out: Any

    @classmethod
    def of(cls, provider: str, model: str) -> _EngineMetrics:
        return cls(
            metrics.engine_requests.labels(provider, model),
            metrics.engine_first_token.labels(provider, model),
            metrics.engine_duration.labels(provider, model),
            metrics.engine_tokens.labels(provider, model, "input"),
            metrics.engine_tokens.labels(provider, model, "output"),
        )


class ObservedProvider(WrappedProvider):
    def __init__(self, inner: Provider, *, ledger: Ledger | None = None) -> None:
        super().__init__(inner)
        self._metrics: dict[str, _EngineMetrics] = {}  # by model: few per engine
        self._ledger = ledger

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        provider, model = self.id, request.model
        if (measured := self._metrics.get(model)) is None:
            measured = self._metrics[model] = _EngineMetrics.of(provider, model)
        measured.requests.inc()
        stats = request_stats()
        span = tracing.start_engine_span(provider, model)
        chunks = self.inner.stream(request)
        if span is not None:
            chunks = tracing.first_step_under(span, chunks)
        began = utcnow()
        start = time.perf_counter()
        first_seen = False
        usage: Usage | None = None
        error: str | None = None
        answer: list[str] = []  # the text, counted only if the engine reports no usage
        try:
            async for chunk in chunks:
                if chunk.replace:
                    answer.clear()
                if chunk.text:
                    answer.append(chunk.text)
                if chunk.text and not first_seen:
                    first_seen = True
                    waited = time.perf_counter() - start
                    measured.first_token.observe(waited)
                    if span is not None:
                        span.add_event("first_token")
                usage = chunk.usage or usage
                yield chunk
        except ProviderError as exc:
            error = exc.code
            metrics.engine_errors.labels(provider, model, exc.code).inc()
            raise
        finally:
            elapsed = time.perf_counter() - start
            measured.duration.observe(elapsed)
            if stats is not None:
                stats.engine_seconds += elapsed
            if usage is not None:
                measured.tokens_in.inc(usage.prompt_tokens)
                measured.tokens_out.inc(usage.completion_tokens)
            if self._ledger is not None and (usage is not None or answer):
                self._note(request, usage, answer, began)
            if span is not None:
                tokens = {} if usage is None else {
                    "gen_ai.usage.input_tokens": usage.prompt_tokens,
                    "gen_ai.usage.output_tokens": usage.completion_tokens,
                }  # fmt: skip
                tracing.end_span(span, error=error, **tokens)

    def _note(
        self, request: CompletionRequest, usage: Usage | None, answer: list[str], began: Any
    ) -> None:
        """The call in the ledger: what the engine reported, or else what was sent and written
        (a call that failed before any text, with no usage, used nothing to record)."""
        assert self._ledger is not None
        if usage is None or not (usage.prompt_tokens or usage.completion_tokens):
            prompt = "\n".join(turn.content for turn in request.messages)
            text = "".join(answer)
            usage = Usage(self.count_tokens(prompt), self.count_tokens(text) if text else 0)
        self._ledger.record(
            user_id=request.user, key_id=request.key_id, assistant_id=request.assistant_id,
            route=request.route, engine=self.id, model=request.model,
            prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
            fallback=request.fallback, began=began,
        )  # fmt: skip
