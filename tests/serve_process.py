"""`chatgate serve` as an operator runs it: a process of its own, from the installed script, with
its settings in the environment and a YAML file, its output (the JSON log lines) in a file the
test reads, stopped with SIGTERM as a supervisor would."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.doubles.server import free_port

CHATGATE = str(Path(sys.executable).with_name("chatgate"))


@dataclass
class ServeProcess:
    url: str
    output: Path  # stdout and stderr together
    process: subprocess.Popen[bytes] | None = None

    def output_text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")


def serve_environment(tmp: Path, **extra: str) -> dict[str, str]:
    """The test runner's environment without its CHATGATE_ settings (the encryption keys kept),
    on a SQLite file of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATGATE_")}
    env["CHATGATE_ENCRYPTION_KEYS"] = os.environ["CHATGATE_ENCRYPTION_KEYS"]
    env["CHATGATE_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp}/chatgate.db"
    env.update(extra)
    return env


@contextmanager
def chatgate_serve(
    tmp: Path,
    config: dict[str, Any],
    *args: str,
    env: dict[str, str],
    verify: ssl.SSLContext | None = None,
) -> Iterator[ServeProcess]:
    """Serves on a free loopback port until the block ends; `verify` (the server certificate's
    trust) makes it HTTPS."""
    config_file = tmp / "chatgate.yaml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    output = tmp / "serve.log"
    command = [
        CHATGATE, "serve", "--host", "127.0.0.1", "--port", str(port),
        "--config", str(config_file), *args,
    ]  # fmt: skip
    with output.open("wb") as out:
        process = subprocess.Popen(command, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT)
    served = ServeProcess(f"{'https' if verify else 'http'}://127.0.0.1:{port}", output, process)
    try:
        _wait_until_healthy(served, process, verify)
        yield served
    except BaseException:
        print("chatgate serve's last lines:", *served.output_text().splitlines()[-30:], sep="\n")
        raise
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _wait_until_healthy(
    served: ServeProcess, process: subprocess.Popen[bytes], verify: ssl.SSLContext | None
) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chatgate serve exited with {process.returncode}")
        try:
            response = httpx.get(f"{served.url}/health", timeout=1, verify=verify or True)
            if response.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("chatgate serve did not become healthy")
