"""Draining on SIGTERM: the signal a load balancer's orchestrator (Kubernetes, systemd, compose)
sends before it kills a process. uvicorn's own handler then stops taking connections and waits
for the open ones; chatgate first starts its drain (`TurnManager.drain`: running answers get
`drain_grace_seconds` to finish, `/ready` answers 503)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def drain_on_sigterm(begin_drain: Callable[[], None]) -> Iterator[None]:
    """Calls `begin_drain` on the event loop when SIGTERM comes, then whatever handled SIGTERM
    before (uvicorn's); the earlier handler is back once the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals (an app run in a test's thread)
        return
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGTERM)

    def handle(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(begin_drain)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is handle:
            signal.signal(signal.SIGTERM, previous)
