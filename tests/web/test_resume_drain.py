"""A chatgate process that drains (SIGTERM) mid-answer, in a real browser: its stream ends with an
`error` server_shutting_down, and the page reads the answer again from another process on the
same database (its events endpoint), showing the answer as it was stored, each word once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.conftest import ROOT, Double
from tests.doubles.server import free_port
from tests.observability.conftest import wait_until_healthy
from tests.web.conftest import Chat
from tests.web.cutproxy import cutting_proxy
from tests.web.test_resume import RECORD_TEXTS, assert_prefixes, recorded, requests_to, words

CONFIG = """\
providers:
  - id: double
    type: openai
    base_url: {double_url}/v1
    api_key_env: DOUBLE_API_KEY
assistants:
  - id: echo
    name: Echo
    provider: double
    model: double-echo
    system_prompt: Echo the user.
    max_context_tokens: 8000
    max_answer_tokens: 200
"""
DRAIN_GRACE = "0.5"  # seconds a draining process gives its running answers


@contextmanager
def serve(tmp: Path, double: Double, name: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`chatgate serve` in a process of its own on the SQLite database under `tmp`."""
    config = tmp / "chatgate.yaml"
    config.write_text(CONFIG.format(double_url=double.url), encoding="utf-8")
    port = free_port()
    env = {
        **os.environ,
        "CHATGATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'chatgate.db'}",
        "CHATGATE_AUTH_MODE": "none",
        "CHATGATE_STREAM_FLUSH_SECONDS": "0.2",
        "CHATGATE_DRAIN_GRACE_SECONDS": DRAIN_GRACE,
        "DOUBLE_API_KEY": "sk-double",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / f"metrics-{name}"),
    }
    for variable in ("CHATGATE_CONFIG", "CHATGATE_REDIS_URL"):
        env.pop(variable, None)
    (tmp / f"metrics-{name}").mkdir()
    stderr = tmp / f"stderr-{name}.log"
    command = [
        sys.executable, "-m", "chatgate.cli", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1", "--config", str(config),
    ]  # fmt: skip
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, stderr)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def test_an_answer_of_a_draining_process_is_read_again_elsewhere(
    page: Page, openai_double: Double, tmp_path: Path
) -> None:
    with (
        serve(tmp_path, openai_double, "first") as (first, first_process),
        # Started before the answer: a process starting on the embedded database ends every
        # answer it finds streaming.
        serve(tmp_path, openai_double, "second") as (second, _),
        cutting_proxy(first) as relay,
    ):
        chat = Chat(page, relay.url)
        page.add_init_script(RECORD_TEXTS)
        resumed = requests_to(page)
        chat.open()
        chat.send("[[slow 100 0.1]] a long story")
        answer = chat.last_answer()
        expect(answer.locator(".msg-body")).to_contain_text("w5")

        relay.retarget(second)
        first_process.send_signal(signal.SIGTERM)
        expect(answer).to_have_attribute("data-status", "interrupted", timeout=15_000)
        # Gone (uvicorn ends by raising the signal it caught again).
        assert first_process.wait(20) in (0, -signal.SIGTERM)
        chat.screenshot("resume-after-drain.png", full_page=True)

        # The first process said it was shutting down; the page read the rest from the second.
        sent = relay.received.decode(errors="replace")
        drained = re.search(r"id: (\d+)\nevent: error\ndata: [^\n]*server_shutting_down", sent)
        assert drained, "the draining process sent no server_shutting_down"
        assert [r.header_value("last-event-id") for r in resumed] == [drained.group(1)]
        with httpx.Client(base_url=second) as api:
            session = chat.session_id()
            stored = api.get(f"/v1/history/{session}").json()["data"][-1]
        assert stored["status"] == "interrupted"
        assert stored["error"]["code"] == "shutdown"
        shown = answer.locator(".msg-body").inner_text()
        assert shown.split() == str(stored["content"]).split()
        assert 6 <= len(shown.split()) < 100
        assert_prefixes([*recorded(page), shown], words(100))
        expect(answer.locator(".badge")).to_have_text("Interrupted")
        expect(answer.locator(".msg-note")).to_contain_text("shutting down")
        expect(chat.notice).to_contain_text("chatgate restarted before the answer finished")
        expect(chat.page.get_by_role("button", name="Send")).to_be_visible()
