"""Restoring masked values in a stream: placeholders come back whatever the chunking."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chatgate.guards.restore import Restorer, RestoringProvider
from chatgate.providers.base import Chunk, CompletionRequest, ProviderError

VALUES = {"[PHONE_1]": "138 1234 5678", "[EMAIL_1]": "a@b.cn", "[PHONE_12]": "+44 20 7946 0958"}
ANSWER = "Call [PHONE_1] or [PHONE_12], mail [EMAIL_1]; [PHONE_2] and [x] stay [PHONE_1]"
RESTORED = (
    "Call 138 1234 5678 or +44 20 7946 0958, mail a@b.cn; [PHONE_2] and [x] stay 138 1234 5678"
)


def run(pieces: list[str]) -> str:
    restorer = Restorer(VALUES)
    return "".join(restorer.feed(p) for p in pieces) + restorer.flush()


def test_whole_text() -> None:
    assert run([ANSWER]) == RESTORED


def test_split_at_every_position() -> None:
    for i in range(len(ANSWER) + 1):
        assert run([ANSWER[:i], ANSWER[i:]]) == RESTORED, i


def test_split_at_every_pair_of_positions() -> None:
    text = "x[PHONE_12]y[EMAIL_1]"
    want = "x+44 20 7946 0958ya@b.cn"
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            assert run([text[:i], text[i:j], text[j:]]) == want, (i, j)


def test_one_character_at_a_time() -> None:
    assert run(list(ANSWER)) == RESTORED


def test_holds_back_only_what_could_still_be_a_placeholder() -> None:
    restorer = Restorer(VALUES)
    assert restorer.feed("see [PHO") == "see "
    assert restorer.feed("NE_1") == ""
    assert restorer.feed("] ok [") == "138 1234 5678 ok "
    assert restorer.feed("y") == "[y"
    assert restorer.feed(" [EMAIL_") == " "
    assert restorer.flush() == "[EMAIL_"  # the answer ended: what was held goes out as it is
    assert restorer.flush() == ""


def test_no_placeholders_is_a_pass_through() -> None:
    restorer = Restorer({})
    assert restorer.feed("[PHONE_1] [") == "[PHONE_1] ["


class ScriptedEngine:
    id = "scripted"
    honours: frozenset[str] = frozenset()

    def __init__(self, chunks: list[Chunk], fail: bool = False) -> None:
        self.chunks, self.fail = chunks, fail

    def count_tokens(self, text: str) -> int:
        return len(text)

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        for chunk in self.chunks:
            yield chunk
        if self.fail:
            raise ProviderError("the engine went away")


REQUEST = CompletionRequest(model="m", messages=[], max_tokens=10)


async def collect(engine: ScriptedEngine) -> list[Chunk]:
    provider = RestoringProvider(engine, VALUES)
    assert provider.id == "scripted" and provider.count_tokens("abc") == 3
    return [c async for c in provider.stream(REQUEST)]


async def test_provider_restores_and_flushes_at_the_end() -> None:
    chunks = await collect(
        ScriptedEngine([Chunk("hi [PHO"), Chunk("NE_1] [EMA", finish_reason="stop")])
    )
    assert "".join(c.text for c in chunks) == "hi 138 1234 5678 [EMA"
    assert chunks[1].finish_reason == "stop"


async def test_provider_replacement_restarts_the_text() -> None:
    chunks = await collect(
        ScriptedEngine([Chunk("draft [PHO"), Chunk("final [EMAIL_1]", replace=True)])
    )
    assert [(c.text, c.replace) for c in chunks] == [("draft ", False), ("final a@b.cn", True)]


async def test_provider_failure_keeps_the_held_text() -> None:
    provider = RestoringProvider(ScriptedEngine([Chunk("so far [PHONE")], fail=True), VALUES)
    seen: list[str] = []
    with pytest.raises(ProviderError):
        async for chunk in provider.stream(REQUEST):
            seen.append(chunk.text)
    assert "".join(seen) == "so far [PHONE"
