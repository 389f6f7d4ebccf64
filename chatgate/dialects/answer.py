"""An engine's answer gathered from its chunks, for a dialect to shape: each choice's text, its
tool calls put together from their streamed pieces, its logprobs and finish reason; the usage;
and which engine wrote it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chatgate.providers.base import Chunk, Usage
from chatgate.providers.fallback import Provenance
from chatgate.providers.messages import ToolCall, ToolCallDelta


@dataclass(slots=True)
class _CallSoFar:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Choice:
    index: int
    texts: list[str] = field(default_factory=list)
    calls: dict[int, _CallSoFar] = field(default_factory=dict)
    logprobs: list[dict[str, Any]] | None = None
    finish_reason: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.texts)

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [
            ToolCall(call.id, call.name, "".join(call.arguments))
            for _, call in sorted(self.calls.items())
        ]

    def add_calls(self, deltas: list[ToolCallDelta]) -> None:
        for delta in deltas:
            call = self.calls.setdefault(delta.index, _CallSoFar())
            call.id = delta.id or call.id
            call.name = delta.name or call.name
            if delta.arguments:
                call.arguments.append(delta.arguments)


class AnswerSoFar:
    def __init__(self, provider: str | None) -> None:
        self.choices: dict[int, Choice] = {}
        self.usage = Usage()
        self.source = Provenance(provider)
        self.model: str | None = None

    def choice(self, index: int = 0) -> Choice:
        if (choice := self.choices.get(index)) is None:
            choice = self.choices[index] = Choice(index)
        return choice

    def see(self, chunk: Chunk) -> Choice:
        """Adds the chunk to its choice, and returns that choice."""
        self.source.see(chunk)
        choice = self.choice(chunk.choice)
        if chunk.replace:  # the engine rewrote its answer so far (e.g. Dify's moderation)
            choice.texts.clear()
        if chunk.text:
            choice.texts.append(chunk.text)
        if chunk.tool_calls:
            choice.add_calls(chunk.tool_calls)
        if chunk.logprobs:
            choice.logprobs = [*(choice.logprobs or ()), *chunk.logprobs]
        if chunk.finish_reason:
            choice.finish_reason = chunk.finish_reason
        self.usage = chunk.usage or self.usage
        self.model = chunk.model or self.model
        return choice

    @property
    def text(self) -> str:
        """Every choice's text, for counting what the answer cost."""
        return "".join(c.text for c in self.choices.values())

    def sorted_choices(self, n: int = 1) -> list[Choice]:
        """The choices by index, the `n` asked for at least (an engine may have given none)."""
        for index in range(n):
            self.choice(index)
        return [self.choices[i] for i in sorted(self.choices)]


def openai_finish_reason(reason: str | None, *, has_calls: bool = False) -> str:
    """A finish reason in OpenAI's vocabulary (stop, length, tool_calls, content_filter)."""
    if has_calls and reason in (None, "stop", "tool_calls"):
        return "tool_calls"  # some engines say "stop" after calls; OpenAI's clients look here
    if reason in ("stop", "length", "content_filter"):
        return reason
    return "length" if reason in ("max_tokens", "max_output_tokens") else "stop"
