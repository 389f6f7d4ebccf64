"""Documents to chunks, respecting Chinese and English: paragraphs, then sentences (`。！？；`, and
`. ! ? ;` before a space or the end), packed up to a size in the embedder's tokens, with whole
sentences of overlap; a sentence longer than the size alone is hard-wrapped. A chunk never spans
two pages, so its page is its citation's. Parent-child: chunks are packed into parents first
and each parent into children, and a child keeps its parent's text.

Pure functions, blocking: ingestion runs them in a thread."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from chatgate.knowledge.parsing import Page

CountTokens = Callable[[str], int]
# Han, kana, CJK punctuation and full-width forms: no spaces between them.
CJK = "\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_IS_CJK = re.compile(f"[{CJK}]")
_PARAGRAPHS = re.compile(r"\n[ \t\u3000]*\n\s*")
_LINE_BREAK = re.compile(r"[ \t]*\n[ \t\u3000]*")
_BOUNDARY = re.compile(r"([。！？；]+[”’」』）)]*|[.!?;]+[”’\"')\]]*(?=\s|$))")
_ATOM = re.compile(f"[{CJK}]|[^\\s{CJK}]+\\s*|\\s+")


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str
    token_count: int
    page: int | None = None
    parent_text: str | None = None


@dataclass(frozen=True, slots=True)
class _Unit:
    """A sentence (or a piece of one too long for a chunk) where it stands."""

    text: str
    tokens: int
    page: int | None
    starts_paragraph: bool


def chunk_pages(
    pages: Sequence[Page],
    *,
    size: int,
    overlap: int,
    count_tokens: CountTokens,
    parent_size: int | None = None,
) -> list[Chunk]:
    """The document's chunks in reading order. With `parent_size`, each chunk of `size` tokens
    carries the text of the parent (about `parent_size` tokens) it was cut from."""
    units = list(_units(pages, size, count_tokens))
    if parent_size is None:
        return [_chunk(group, count_tokens) for group in _pack(units, size, overlap)]
    chunks = []
    for parent in _pack(units, parent_size, 0):
        parent_text = _join(parent)
        for child in _pack(parent, size, overlap):
            chunks.append(_chunk(child, count_tokens, parent_text))
    return chunks


def split_paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs, each on one line: a line break inside one is a space
    between words, nothing between Chinese characters (PDFs break lines mid-sentence)."""
    paragraphs = []
    for block in _PARAGRAPHS.split(text):
        joined = _LINE_BREAK.sub(_line_join, block.strip())
        if joined:
            paragraphs.append(joined)
    return paragraphs


def split_sentences(paragraph: str) -> list[str]:
    """Sentences, each keeping its closing mark (and closing quotes or brackets after it)."""
    sentences = []
    current = ""
    for i, part in enumerate(_BOUNDARY.split(paragraph)):
        current += part
        if i % 2 == 1:  # a boundary: the sentence ends here
            if current.strip():
                sentences.append(current.strip())
            current = ""
    if current.strip():
        sentences.append(current.strip())
    return sentences


def hard_wrap(sentence: str, size: int, count_tokens: CountTokens) -> list[str]:
    """A sentence over `size` tokens cut between words (between characters in Chinese)."""
    pieces: list[str] = []
    current, tokens = "", 0
    for atom in _atoms(sentence, size, count_tokens):
        cost = count_tokens(atom)
        if current and tokens + cost > size:
            pieces.append(current.strip())
            current, tokens = "", 0
        current += atom
        tokens += cost
    if current.strip():
        pieces.append(current.strip())
    return pieces


def _atoms(sentence: str, size: int, count_tokens: CountTokens) -> Iterable[str]:
    for atom in _ATOM.findall(sentence):
        cost = count_tokens(atom)
        if cost <= size:
            yield atom
            continue
        # One "word" longer than a chunk (a URL, a hash, a run without spaces): cut by length.
        step = max(1, len(atom) * size // (cost + 1))
        for start in range(0, len(atom), step):
            yield atom[start : start + step]


def _units(pages: Sequence[Page], size: int, count_tokens: CountTokens) -> Iterable[_Unit]:
    for page in pages:
        for paragraph in split_paragraphs(page.text):
            first = True
            for sentence in split_sentences(paragraph):
                tokens = count_tokens(sentence)
                pieces = [sentence] if tokens <= size else hard_wrap(sentence, size, count_tokens)
                for piece in pieces:
                    cost = tokens if len(pieces) == 1 else count_tokens(piece)
                    yield _Unit(piece, cost, page.number, first)
                    first = False


def _pack(units: Sequence[_Unit], size: int, overlap: int) -> list[list[_Unit]]:
    """Units in groups of at most `size` tokens, never across a page; each group after the
    first on a page starts with the last whole sentences of the one before, up to `overlap`."""
    groups: list[list[_Unit]] = []
    current: list[_Unit] = []
    tokens = 0
    for unit in units:
        if current and (tokens + unit.tokens > size or unit.page != current[-1].page):
            groups.append(current)
            carry = _tail(current, overlap) if unit.page == current[-1].page else []
            while carry and sum(u.tokens for u in carry) + unit.tokens > size:
                carry.pop(0)
            current = carry
            tokens = sum(u.tokens for u in carry)
        current.append(unit)
        tokens += unit.tokens
    if current:
        groups.append(current)
    return groups


def _tail(group: list[_Unit], overlap: int) -> list[_Unit]:
    """The last whole units of a group within `overlap` tokens, never the whole group."""
    tail: list[_Unit] = []
    tokens = 0
    for unit in reversed(group[1:]):
        if tokens + unit.tokens > overlap:
            break
        tail.insert(0, unit)
        tokens += unit.tokens
    return tail


def _join(units: Sequence[_Unit]) -> str:
    text = ""
    for unit in units:
        if text:
            text += "\n\n" if unit.starts_paragraph else _space(text[-1], unit.text[0])
        text += unit.text
    return text


def _chunk(units: Sequence[_Unit], count_tokens: CountTokens, parent: str | None = None) -> Chunk:
    text = _join(units)
    return Chunk(text, count_tokens(text), units[0].page, parent)


def _space(before: str, after: str) -> str:
    return "" if _IS_CJK.match(before) or _IS_CJK.match(after) else " "


def _line_join(match: re.Match[str]) -> str:
    text = match.string
    before = text[match.start() - 1] if match.start() else ""
    after = text[match.end()] if match.end() < len(text) else ""
    return "" if (before and _IS_CJK.match(before)) and (after and _IS_CJK.match(after)) else " "


def keyword_text(text: str) -> str:
    """The text as the keyword index reads it: words separated by spaces, Chinese segmented
    into words by jieba (a full-text index would otherwise see a whole sentence as one word),
    punctuation left out."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return " ".join(word for word in jieba.cut(text) if any(ch.isalnum() for ch in word))
