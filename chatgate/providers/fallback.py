"""An assistant's fallback chain: its engine, then each fallback engine, then its canned answer.

The chain moves on only while no text has been produced: an answer is never stitched together
from two engines. Whatever answers is marked on every chunk (`provider`, `fallback`), so the
stored message and the response say which engine answered and whether it was a fallback.

Until a link produces text its other chunks (e.g. a Dify conversation id) are held back, so the
first chunk a caller sees already comes from the link that answers; a failed link's held chunks
follow it (still naming their own engine, whose session state they carry).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from chatgate.observability import metrics
from chatgate.providers.base import Chunk, CompletionRequest, Provider, ProviderError
from chatgate.providers.features import first_unhonoured
from chatgate.providers.resilient import closing

log = logging.getLogger("chatgate.providers.fallback")
CANNED = "answer"  # the `to` of chatgate_fallbacks_total when the canned answer is given


@dataclass(frozen=True, slots=True)
class ChainSpec:
    """A chain by name, to hand to another process (a queue worker) that builds it again."""

    providers: tuple[str, ...]
    fallback_answer: str | None = None
    # The model asked of each engine, in order; None (or none given): the request's own.
    models: tuple[str | None, ...] = ()


def chain_spec(provider: Provider) -> ChainSpec:
    """What a worker needs to build the same engines again: a chain's spec, or one engine."""
    spec = getattr(provider, "spec", None)
    return spec if isinstance(spec, ChainSpec) else ChainSpec((provider.id,))


@dataclass(slots=True)
class Provenance:
    """Who wrote an answer, followed chunk by chunk: `provider` starts as the engine asked."""

    provider: str | None
    fallback: bool = False

    def see(self, chunk: Chunk) -> None:
        self.fallback = self.fallback or chunk.fallback
        # Unmarked text (an engine used alone, or a wrapper's own piece) keeps the last mark.
        if chunk.answers and (chunk.provider or chunk.fallback):
            self.provider = chunk.provider


class FallbackChain:
    def __init__(
        self,
        links: Sequence[Provider],
        *,
        fallback_answer: str | None,
        models: Sequence[str | None] = (),
    ) -> None:
        if not links:
            raise ValueError("a fallback chain needs at least one engine")
        self.links = list(links)
        self.models = [*models, *[None] * (len(self.links) - len(models))]
        # The chain stands for its first engine: session state, token counts and the
        # parameters it honours are its own (a request it cannot honour is refused by name).
        self.id = self.links[0].id
        self.honours = self.links[0].honours
        self.fallback_answer = fallback_answer or None
        self.spec = ChainSpec(
            tuple(p.id for p in self.links), self.fallback_answer, tuple(self.models)
        )

    def count_tokens(self, text: str) -> int:
        return self.links[0].count_tokens(text)

    async def count_tokens_async(self, text: str) -> int:
        return await self.links[0].count_tokens_async(text)

    async def start(self) -> None:
        """Nothing: the registry starts and closes the engines."""

    async def close(self) -> None:
        """Nothing: the registry starts and closes the engines."""

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        carried: list[Chunk] = []  # held chunks of links that failed
        failures: list[ProviderError] = []
        for index, link in enumerate(self.links):
            fallback = index > 0
            if fallback and (param := first_unhonoured(request, link.honours)) is not None:
                # Skipped, not asked to pretend: its answer would ignore what was asked.
                log.info("fallback engine %r skipped: it cannot honour %r", link.id, param)
                continue
            # Session state belongs to the first engine; a fallback engine starts afresh, is
            # asked for its own model when it names one, and is noted as a fallback.
            link_request = request
            if index > 0 or self.models[index]:
                link_request = dataclasses.replace(
                    request,
                    session_state=request.session_state if index == 0 else {},
                    model=self.models[index] or request.model,
                    fallback=fallback,
                )
            held: list[Chunk] = []
            started = False
            try:
                async with closing(link.stream(link_request)) as chunks:
                    async for chunk in chunks:
                        chunk.provider, chunk.fallback = link.id, fallback
                        if started:
                            yield chunk
                        elif chunk.answers:
                            started = True
                            yield chunk
                            for earlier in (*held, *carried):
                                earlier.fallback = fallback
                                yield earlier
                        else:
                            held.append(chunk)
            except ProviderError as exc:
                if started:
                    raise
                carried.extend(held)
                failures.append(exc)
                following = self.links[index + 1].id if index + 1 < len(self.links) else None
                self._note_fallback(link.id, exc, following)
                continue
            if not started:  # the engine ended without text: that is its answer
                for chunk in (*held, *carried):
                    chunk.fallback = fallback
                    yield chunk
            return
        if self.fallback_answer is not None:
            yield Chunk(
                text=self.fallback_answer, finish_reason="stop", provider=None, fallback=True
            )
            for chunk in carried:
                chunk.fallback = True
                yield chunk
            return
        for chunk in carried:
            yield chunk
        raise _combined(failures)

    def _note_fallback(self, provider_id: str, error: ProviderError, following: str | None) -> None:
        to = following or (CANNED if self.fallback_answer is not None else None)
        if to is None:
            return
        metrics.fallbacks.labels(provider_id, to).inc()
        log.warning(
            "engine %r failed before answering (%s: %s); falling back to %s",
            provider_id, error.code, error.message,
            f"engine {to!r}" if following else "the canned answer",
        )  # fmt: skip


def _combined(failures: list[ProviderError]) -> ProviderError:
    """The last engine's error, its message naming what the engines before it said."""
    last = failures[-1]
    if len(failures) > 1:
        earlier = "; ".join(f.message for f in failures[:-1])
        last.message = f"{last.message} (tried before it: {earlier})"
        last.args = (last.message,)
    return last
