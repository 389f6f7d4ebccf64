"""Columns sealed at rest: `SealedText` and `SealedJSON` encrypt on the way into the database and
decrypt on the way out, with the data key of the user the current request or job acts for (the
`sealing` context, set by `Vault.enter`). A value is `cg1:<key ref>:<base64(nonce + AES-256-GCM
ciphertext)>`, bound to its key ref; "" and NULL stay as they are.

With no context (encryption off, or code that acts for nobody, such as a migration), values are
written as given and sealed ones are read back as they are stored; the start-up checks and the
tests that read the raw database make sure every user-facing path has one."""

from __future__ import annotations

import json
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Dialect, Text
from sqlalchemy.types import TypeDecorator

PREFIX = "cg1:"


class Opener(Protocol):
    def open(self, stored: str) -> str: ...


class Sealer(Protocol):
    def seal(self, text: str) -> str: ...


@dataclass(frozen=True, slots=True)
class Sealing:
    """What the columns seal with while a request or job acts for a user: the vault (which
    opens any value whose key it holds) and that user's data key (None: encryption off)."""

    vault: Opener
    cipher: Sealer | None


sealing: ContextVar[Sealing | None] = ContextVar("sealing", default=None)


def seal_value(text: str) -> str:
    context = sealing.get()
    if context is None or context.cipher is None or not text:
        return text
    return context.cipher.seal(text)


def open_value(stored: str) -> str:
    if not stored.startswith(PREFIX):
        return stored
    context = sealing.get()
    return stored if context is None else context.vault.open(stored)


class SealedText(TypeDecorator[str]):
    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else seal_value(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else open_value(value)


class SealedJSON(TypeDecorator[Any]):
    """JSON as sealed text (a JSON column could not hold the ciphertext)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return seal_value(json.dumps(value, ensure_ascii=False, separators=(",", ":")))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        opened = open_value(value)
        return None if opened.startswith(PREFIX) or not opened else json.loads(opened)
