"""Text from clients that every backend can store and every engine can read.

Python's json module (which FastAPI parses bodies with) decodes a `\\ud800` escape without its
pair into a str holding a lone surrogate, which is no character and which UTF-8 cannot encode:
each database write and engine call would fail on it with a 500, after whatever came before it
had been written. pydantic's own JSON parser (the completions lane's) refuses them already.
NUL is refused too: PostgreSQL cannot store it in text."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def is_unicode_text(text: str) -> bool:
    """False for a str holding lone surrogates."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unicode_text(text: str) -> str:
    if not is_unicode_text(text):
        raise ValueError("lone surrogates (a \\ud800-\\udfff escape without its pair) are not text")
    if "\x00" in text:
        # PostgreSQL's text refuses U+0000: the write would fail after the request was taken.
        raise ValueError("NUL (U+0000) is not text that every backend can store")
    return text


# A client's free text (a field without a length or pattern, which would check this already).
UnicodeText = Annotated[str, AfterValidator(_unicode_text)]
