"""A chatgate process killed (SIGKILL: no shutdown, no last save) mid-answer: after a restart on
the same database the answer is `interrupted` with the text saved so far, and the session takes
the next message."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import ROOT, Double
from tests.doubles.server import free_port
from tests.observability.conftest import CONFIG, wait_until_healthy


@contextmanager
def chatgate_process(tmp: Path, double: Double) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`chatgate serve` on the embedded SQLite database under `tmp`, in a process group of its
    own so the test can kill it outright."""
    config = tmp / "chatgate.yaml"
    config.write_text(CONFIG.format(double_url=double.url), encoding="utf-8")
    port = free_port()
    env = {
        **os.environ,
        "CHATGATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'chatgate.db'}",
        "CHATGATE_AUTH_MODE": "none",
        "CHATGATE_STREAM_FLUSH_SECONDS": "0.2",
        "DOUBLE_API_KEY": "sk-double",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / f"metrics-{port}"),
    }
    for name in ("CHATGATE_CONFIG", "CHATGATE_REDIS_URL"):
        env.pop(name, None)
    (tmp / f"metrics-{port}").mkdir()
    stderr = tmp / f"stderr-{port}.log"
    command = [
        sys.executable, "-m", "chatgate.cli", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1", "--config", str(config),
    ]  # fmt: skip
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err,
            start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, stderr)
        yield url, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def test_an_answer_of_a_killed_process_is_interrupted_with_its_text(
    tmp_path: Path, openai_double: Double
) -> None:
    with (
        chatgate_process(tmp_path, openai_double) as (url, process),
        httpx.Client(base_url=url, timeout=20) as http,
    ):
        session = http.post("/v1/sessions", json={"assistant_id": "echo"}).json()
        deltas = 0
        with http.stream(
            "POST", f"/v1/sessions/{session['id']}/messages",
            json={"content": "[[slow 100 0.1]]", "response_mode": "streaming"},
        ) as streaming:  # fmt: skip
            for line in streaming.iter_lines():
                deltas += line == "event: delta"
                if deltas == 12:  # 1.2 s of text: several flushes of 0.2 s behind it
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)
                    break
    with (
        chatgate_process(tmp_path, openai_double) as (url, _),
        httpx.Client(base_url=url, timeout=20) as http,
    ):
        page = http.get(f"/v1/history/{session['id']}").json()
        answer = page["data"][-1]
        assert answer["status"] == "interrupted", answer
        words = answer["content"].split()
        assert len(words) >= 5 and words == [f"w{i}" for i in range(len(words))], answer
        reply = http.post(f"/v1/sessions/{session['id']}/messages", json={"content": "back again?"})
        assert reply.status_code == 200, reply.text
        assert reply.json()["message"]["content"] == "echo: back again?"
