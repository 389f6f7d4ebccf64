"""`chatgate serve --workers 2` as a real subprocess, as an operator runs it: the YAML config
from --config, SQLite from CHATGATE_DATABASE_URL, auth mode none on loopback, its stderr (the
JSON log lines) kept in a file the tests read."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, Double
from tests.doubles.server import free_port

CONFIG = """\
providers:
  - id: upstream
    type: openai
    base_url: {double_url}/v1
    api_key_env: DOUBLE_API_KEY
    timeouts: {{connect: 2, first_token: 5, total: 20}}
    retries: {{attempts: 0}}
assistants:
  - id: echo
    name: Echo
    provider: upstream
    model: double-echo
    system_prompt: Echo the user.
    max_context_tokens: 8000
    max_answer_tokens: 200
"""


@dataclass
class Served:
    url: str
    database_url: str
    stderr: Path
    metrics_dir: Path
    double: Double

    def log_lines(self) -> list[str]:
        return self.stderr.read_text(encoding="utf-8", errors="replace").splitlines()

    def json_lines(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_lines():
            if line.startswith("{"):
                records.append(json.loads(line))
        return records


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], stderr: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"chatgate serve exited with {process.returncode}:\n{stderr.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"chatgate serve did not become healthy:\n{stderr.read_text()}")


@contextmanager
def serve_subprocess(
    tmp: Path, double: Double, *, workers: int, extra_env: dict[str, str] | None = None
) -> Iterator[Served]:
    """`chatgate serve` in a process of its own, stopped with SIGTERM as a supervisor would."""
    config = tmp / "chatgate.yaml"
    config.write_text(CONFIG.format(double_url=double.url), encoding="utf-8")
    metrics_dir = tmp / "metrics"
    metrics_dir.mkdir()
    database_url = f"sqlite+aiosqlite:///{tmp / 'chatgate.db'}"
    port = free_port()
    env = {
        **os.environ,
        "CHATGATE_DATABASE_URL": database_url,
        "CHATGATE_AUTH_MODE": "none",
        "CHATGATE_LOG_LEVEL": "INFO",
        "CHATGATE_RATE_LIMITS__REQUESTS_PER_MINUTE": "100000",
        "CHATGATE_RATE_LIMITS__IP_REQUESTS_PER_MINUTE": "100000",
        "DOUBLE_API_KEY": "sk-double",
        # Set here (serve keeps one it is given) so the tests can look at each worker's files.
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        **(extra_env or {}),
    }
    for name in ("CHATGATE_CONFIG", "CHATGATE_REDIS_URL"):
        env.pop(name, None)
    stderr = tmp / "stderr.log"
    command = [
        sys.executable, "-m", "chatgate.cli", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--config", str(config),
    ]  # fmt: skip
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, stderr)
        yield Served(url, database_url, stderr, metrics_dir, double)
    except BaseException:
        # Shown by pytest with the failure: what the server said last.
        print("chatgate serve's last log lines:", *stderr.read_text().splitlines()[-30:], sep="\n")
        raise
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="session")
def two_workers(
    tmp_path_factory: pytest.TempPathFactory, openai_double: Double
) -> Iterator[Served]:
    with serve_subprocess(tmp_path_factory.mktemp("served"), openai_double, workers=2) as served:
        yield served
