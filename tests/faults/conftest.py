"""Faults injected for real: a Redis of the suite's own that is paused (SIGSTOP: it accepts
connections and never answers, like a hung or swapping host) or killed (SIGKILL), never the
shared one on 6379 that other suites use."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.doubles.server import free_port


class ControlledRedis:
    """A redis-server child process that a test may pause, resume, kill and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(200):
            ping = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True)
            if ping.stdout.strip() == b"PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("the private redis-server did not start")

    def pause(self) -> None:
        os.kill(self._pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self._pid, signal.SIGCONT)

    def kill(self) -> None:
        os.kill(self._pid, signal.SIGKILL)
        assert self._process is not None
        self._process.wait(10)
        self._process = None

    def stop(self) -> None:
        if self._process is None:
            return
        self.resume()  # a paused process does not act on SIGTERM until it runs again
        self._process.terminate()
        self._process.wait(10)
        self._process = None

    @property
    def _pid(self) -> int:
        assert self._process is not None, "the private redis-server is not running"
        return self._process.pid


@pytest.fixture(scope="module")
def faulty_redis() -> Iterator[ControlledRedis]:
    redis = ControlledRedis()
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()
