"""How code below the runtime gets a long-lived part of the process: by the part's type.

The runtime (`chatgate/runtime.py`) builds every part once and the app carries it; a domain's
`deps.py` asks for the part it needs by type (`part(TurnManager)`), so no domain imports the
runtime, which sits above them all, and nothing reads `app.state` by a name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from starlette.requests import HTTPConnection

T = TypeVar("T")


class Parts(Protocol):
    """What the runtime offers the layers below it."""

    def get(self, kind: type[T]) -> T:
        """The part of that type; LookupError when this process has none."""
        ...

    def find(self, kind: type[T]) -> T | None:
        """The part of that type, or None where it is optional and not configured (Redis)."""
        ...


def parts_of(app: Any) -> Parts:
    """The parts of the runtime that the app's lifespan attached (`ChatgateApp.runtime`)."""
    parts: Parts = app.runtime
    return parts


def part(kind: type[T]) -> Callable[[HTTPConnection], Awaitable[T]]:
    """A FastAPI dependency giving the part of this type."""

    async def dependency(connection: HTTPConnection) -> T:
        return parts_of(connection.app).get(kind)

    dependency.__name__ = f"part_{kind.__name__}"
    return dependency


def optional_part(kind: type[T]) -> Callable[[HTTPConnection], Awaitable[T | None]]:
    """A FastAPI dependency giving the part of this type, or None when it is not configured."""

    async def dependency(connection: HTTPConnection) -> T | None:
        return parts_of(connection.app).find(kind)

    dependency.__name__ = f"optional_part_{kind.__name__}"
    return dependency
