"""Every engine call measured the same way: latency, time to first token, tokens, errors."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

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
    def __init__(self, inner: Provider) -> None:
        super().__init__(inner)
        self._metrics: dict[str, _EngineMetrics] = {}  # by model: few per engine

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
        start = time.perf_counter()
        first_seen = False
        usage: Usage | None = None
        error: str | None = None
        try:
            async for chunk in chunks:
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
            if span is not None:
                tokens = {} if usage is None else {
                    "gen_ai.usage.input_tokens": usage.prompt_tokens,
                    "gen_ai.usage.output_tokens": usage.completion_tokens,
                }  # fmt: skip
                tracing.end_span(span, error=error, **tokens)
