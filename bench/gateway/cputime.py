"""CPU time per call, the best batch of several, and the lines hotpath.py prints them in."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

BATCH = 2000
REPEATS = 7


def cpu_per_call(run_batch: Callable[[int], None]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.process_time()
        run_batch(BATCH)
        best = min(best, time.process_time() - start)
    return 1e6 * best / BATCH


def acpu_per_call(loop: asyncio.AbstractEventLoop, make: Callable[[], Awaitable[Any]]) -> float:
    async def batch(n: int) -> None:
        for _ in range(n):
            await make()

    return cpu_per_call(lambda n: loop.run_until_complete(batch(n)))


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    saved = os.dup(2)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def line(label: str, today: float, better: float | None = None, how: str = "") -> None:
    text = f"  {label:<44} {today:8.1f} µs"
    if better is not None:
        text += f"   -> {better:7.1f} µs  {how}"
    print(text, flush=True)


def versus(label: str, plain: float, tools: float) -> None:
    """A piece timed with the plain request and with the tool-calling one."""
    print(
        f"  {label:<44} {plain:8.1f} µs plain   {tools:8.1f} µs tool call  "
        f"({tools - plain:+7.1f} µs, {tools / plain:.2f}x)",
        flush=True,
    )
