"""Answers grounded in knowledge bases: the passages an assistant retrieves for a turn, fitted
into its context, shown to the engine numbered [1], [2]…, and kept as the answer's citations.

Passages are fitted before the history: whole passages only (a passage cut mid-sentence would
misquote its document), dropping the lowest-ranked ones until the rest fit; the history then
gets what is left. The citations shown to the user hold the passages as the documents say them;
the engine sees them after the guards (masked like the history).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from chatgate.chat.context import MESSAGE_OVERHEAD
from chatgate.knowledge.retrieval import Passage

KNOWLEDGE_HEADER = (
    "Answer from the numbered passages below, which come from the knowledge base. Cite the "
    "passages you use by their number in square brackets, like [1]. If they do not hold the "
    "answer, say so instead of guessing."
)


class TokenCounter(Protocol):
    async def count_tokens_async(self, text: str) -> int: ...


@dataclass(frozen=True, slots=True)
class Grounding:
    """The passages of one turn, best first: their index is their position plus one."""

    passages: tuple[Passage, ...] = ()
    tokens: int = 0  # what the knowledge message takes of the context, overhead included

    def citations(self) -> list[dict[str, Any]]:
        """API.md's `Citation`s, as stored on the answer row (JSON)."""
        return [citation(i, p) for i, p in enumerate(self.passages, start=1)]


def citation(index: int, passage: Passage) -> dict[str, Any]:
    return {
        "index": index,
        "document_id": str(passage.document_id),
        "document_name": passage.document_name,
        "chunk_id": str(passage.chunk_id),
        "page": passage.page,
        "score": round(float(passage.score), 6),
        "text": passage.text,
    }


def passage_block(index: int, passage: Passage, text: str | None = None) -> str:
    where = passage.document_name + (f", page {passage.page}" if passage.page is not None else "")
    return f"[{index}] ({where})\n{passage.text if text is None else text}"


def knowledge_message(passages: Sequence[Passage], texts: Sequence[str] | None = None) -> str:
    """The system message that carries the passages (`texts`: as the guards left them)."""
    shown = texts if texts is not None else [p.text for p in passages]
    pairs = enumerate(zip(passages, shown, strict=True), start=1)
    blocks = [passage_block(i, p, t) for i, (p, t) in pairs]
    return "\n\n".join([KNOWLEDGE_HEADER, *blocks])


async def fit_passages(
    passages: Sequence[Passage], *, room: int, counter: TokenCounter
) -> Grounding:
    """The best passages whose message fits within `room` tokens: the lowest-ranked are dropped
    until the rest fit (never a passage cut short)."""
    if not passages:
        return Grounding()
    fixed = await counter.count_tokens_async(KNOWLEDGE_HEADER) + MESSAGE_OVERHEAD
    # Each block is counted with the separator before it; its number changes nothing in size
    # that matters (a digit or two), so the count is taken once per passage.
    sizes = [
        await counter.count_tokens_async("\n\n" + passage_block(i, p))
        for i, p in enumerate(passages, start=1)
    ]
    kept = len(passages)
    while kept and fixed + sum(sizes[:kept]) > room:
        kept -= 1
    if not kept:
        return Grounding()
    return Grounding(tuple(passages[:kept]), fixed + sum(sizes[:kept]))
