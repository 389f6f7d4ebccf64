"""Putting masked values back: placeholders in an engine's answer become the user's own text again,
chunk by chunk, even when a placeholder arrives split across chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import replace

from chatgate.providers.base import Chunk, CompletionRequest, Provider, WrappedProvider


class Restorer:
    """Streams text through, replacing known placeholders; holds back only a tail that could still
    become one (at most a placeholder's length), and hands it out at `flush`."""

    def __init__(self, placeholders: Mapping[str, str]) -> None:
        self._values = dict(placeholders)
        self._pending = ""

    def feed(self, text: str) -> str:
        buffer, self._pending = self._pending + text, ""
        out: list[str] = []
        i = 0
        while (j := buffer.find("[", i)) >= 0:
            out.append(buffer[i:j])
            key = next((k for k in self._values if buffer.startswith(k, j)), None)
            if key is not None:
                out.append(self._values[key])
                i = j + len(key)
                continue
            rest = buffer[j:]
            # No placeholder is a prefix of another (each ends in "]"), so a tail that starts one
            # is worth waiting for, and anything else is plain text.
            if any(k.startswith(rest) for k in self._values):
                self._pending = rest
                return "".join(out)
            out.append("[")
            i = j + 1
        out.append(buffer[i:])
        return "".join(out)

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return rest


class RestoringProvider(WrappedProvider):
    """An engine whose answers are restored on the way out. Same id, so per-session engine state
    and metrics stay the engine's own."""

    def __init__(self, inner: Provider, placeholders: Mapping[str, str]) -> None:
        super().__init__(inner)
        self._placeholders = dict(placeholders)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        restorer = Restorer(self._placeholders)
        chunks = self.inner.stream(request)
        try:
            async for chunk in chunks:
                if chunk.replace:
                    restorer.flush()  # the replacement supersedes whatever was held back
                yield replace(chunk, text=restorer.feed(chunk.text))
        except Exception:
            # An engine failing mid-answer: the text withheld so far is part of what is kept.
            if tail := restorer.flush():
                yield Chunk(text=tail)
            raise
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
        if tail := restorer.flush():
            yield Chunk(text=tail)
