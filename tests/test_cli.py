"""The `chatgate` command, run as a person would run it: a subprocess of the installed script."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import Double
from tests.doubles.server import free_port

CHATGATE = str(Path(sys.executable).with_name("chatgate"))


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATGATE_")}
    env["CHATGATE_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    env.update(extra)
    return env


def chatgate(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHATGATE, *args],
        env=environment(tmp_path, **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def write_yaml(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "chatgate.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_serve_refuses_other_hosts_without_auth(tmp_path: Path) -> None:
    for host in ("0.0.0.0", "::"):
        result = chatgate(tmp_path, "serve", "--host", host, CHATGATE_AUTH_MODE="none")
        assert result.returncode == 2, result.stderr
        assert "loopback" in result.stderr and host in result.stderr
        assert "CHATGATE_AUTH_MODE=jwt" in result.stderr
        assert "Traceback" not in result.stderr
    # It stopped before touching the database.
    assert not (tmp_path / "cli.db").exists()


def test_migrate_creates_the_tables_on_a_fresh_database(tmp_path: Path) -> None:
    result = chatgate(tmp_path, "migrate")
    assert result.returncode == 0, result.stderr
    assert "database is up to date" in result.stdout
    created = tables(tmp_path / "cli.db")
    assert {"alembic_version", "sessions", "messages", "audit_events"} <= created
    # Running it again changes nothing and succeeds.
    again = chatgate(tmp_path, "migrate")
    assert again.returncode == 0, again.stderr
    assert tables(tmp_path / "cli.db") == created
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("command", "provider", "expected"),
    [
        (
            "serve",
            {"id": "upstream", "type": "openai", "base_url": "http://127.0.0.1:1/v1"},
            "assistant 'support' names unknown provider 'nowhere'",
        ),
        (
            "migrate",
            {"id": "nowhere", "type": "bard", "base_url": "http://127.0.0.1:1/v1"},
            "providers.0.type",
        ),
    ],
)
def test_a_config_naming_an_unknown_provider_exits_2_with_a_readable_message(
    tmp_path: Path, command: str, provider: dict[str, Any], expected: str
) -> None:
    config = write_yaml(
        tmp_path,
        {
            "providers": [provider],
            "assistants": [
                {"id": "support", "name": "Support", "provider": "nowhere", "model": "m"}
            ],
        },
    )
    result = chatgate(tmp_path, command, "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("chatgate: invalid configuration:"), result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cli.db").exists()


def test_a_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = chatgate(tmp_path, "migrate", "--config", "nope.yaml")
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_serve_migrates_and_serves_until_stopped(tmp_path: Path, openai_double: Double) -> None:
    config = write_yaml(
        tmp_path,
        {
            "providers": [
                {
                    "id": "up",
                    "type": "openai",
                    "base_url": f"{openai_double.url}/v1",
                    "api_key_env": "CLI_DOUBLE_KEY",
                }
            ],
            "assistants": [
                {"id": "support", "name": "Support", "provider": "up", "model": "double-cli"}
            ],
        },
    )
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [CHATGATE, "serve", "--port", str(port), "--config", str(config)],
        env=environment(tmp_path, CLI_DOUBLE_KEY="sk-double"),
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "chatgate serve did not come up"
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        assert httpx.get(f"{url}/ready").json()["status"] == "ready"
        assistants = httpx.get(f"{url}/v1/assistants").json()["data"]
        assert [a["id"] for a in assistants] == ["support"]
        session = httpx.post(f"{url}/v1/sessions", json={"assistant_id": "support"}).json()
        answer = httpx.post(
            f"{url}/v1/sessions/{session['id']}/messages", json={"content": "from the cli"}
        )
        assert answer.json()["message"]["content"] == "echo: from the cli"
    finally:
        process.terminate()
        code = process.wait(30)
        log.close()
    # A graceful stop (uvicorn re-raises the signal it caught once it has shut down).
    output = (tmp_path / "serve.log").read_text()
    assert code in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert {"sessions", "messages"} <= tables(tmp_path / "cli.db")
