"""Auth mode none serves this machine only, enforced by the app itself (not only by the CLI's
choice of address): a loopback client asking for a loopback name, so neither another machine nor
a web page through DNS rebinding reaches the user `local`, who is an admin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from chatgate.core.policies import AccessSettings
from tests.conftest import Double, assert_error, remote_only_settings, serve_chatgate


@dataclass
class Local:
    url: str
    port: int


@pytest.fixture
async def local(tmp_path: Path, openai_double: Double) -> AsyncIterator[Local]:
    settings = remote_only_settings(
        f"sqlite+aiosqlite:///{tmp_path}/local.db", openai_double.url, auth_mode="none",
        # A proxy on this machine: what it forwards is believed, as from a real one.
        access=AccessSettings(trusted_proxies=["127.0.0.1/32"]),
    )  # fmt: skip
    async with serve_chatgate(settings) as url:
        yield Local(url=url, port=urlsplit(url).port or 0)


PATHS = [
    ("GET", "/v1/admin/audit"),
    ("GET", "/v1/assistants"),
    ("GET", "/health"),
    ("POST", "/v1/chat/completions"),
]


async def test_a_foreign_host_name_is_refused(local: Local) -> None:
    completion = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=local.url, timeout=30) as http:
        for host in ("attacker.example", f"attacker.example:{local.port}", "127.0.0.2",
                     "localhost.", "0.0.0.0", f"localhost:{local.port}@evil", "::1"):  # fmt: skip
            for method, path in PATHS:
                body = completion if method == "POST" else None
                response = await http.request(method, path, json=body, headers={"Host": host})
                assert_error(response, 403, "host_not_allowed")
        sessions = await http.get("/v1/sessions")
    assert sessions.json()["data"] == []  # nothing was done by the refused ones


async def test_loopback_names_with_any_port_are_served(local: Local) -> None:
    async with httpx.AsyncClient(base_url=local.url, timeout=30) as http:
        for host in ("localhost", f"localhost:{local.port}", f"LOCALHOST:{local.port}",
                     f"127.0.0.1:{local.port}", "127.0.0.1", "[::1]", "[::1]:8000"):  # fmt: skip
            response = await http.get("/v1/admin/audit", headers={"Host": host})
            assert response.status_code == 200, (host, response.text)


async def test_a_client_that_is_not_on_this_machine_is_refused(local: Local) -> None:
    async with httpx.AsyncClient(base_url=local.url, timeout=30) as http:
        for client in ("203.0.113.7", "192.168.1.20", "::ffff:10.0.0.1", "2001:db8::1"):
            headers = {"X-Forwarded-For": client}
            for method, path in PATHS:
                response = await http.request(method, path, headers=headers, json={})
                assert_error(response, 403, "not_loopback")
        local_client = await http.get("/v1/admin/audit", headers={"X-Forwarded-For": "127.0.0.1"})
        assert local_client.status_code == 200, local_client.text


async def test_a_page_from_another_site_is_refused(local: Local) -> None:
    async with httpx.AsyncClient(base_url=local.url, timeout=30) as http:
        session = (await http.post("/v1/sessions", json={"assistant_id": "echo"})).json()
        stop = f"/v1/sessions/{session['id']}/stop"
        # A bodiless POST needs no preflight: a page anywhere could send it, with its Origin.
        for origin in (
            "http://evil.example",
            "null",
            f"http://localhost.evil.example:{local.port}",
        ):
            response = await http.post(stop, headers={"Origin": origin})
            assert_error(response, 403, "origin_not_allowed")
        for origin in (local.url, f"http://localhost:{local.port}", "http://[::1]:9"):
            response = await http.post(stop, headers={"Origin": origin})
            assert response.status_code == 200, (origin, response.text)


async def test_a_body_without_a_type_is_refused(local: Local) -> None:
    # With no credentials to forge, a typeless body (a page's Blob) needs no preflight either.
    async with httpx.AsyncClient(base_url=local.url, timeout=30) as http:
        untyped = await http.post("/v1/sessions", content=b'{"assistant_id": "echo"}')
        assert_error(untyped, 415, "unsupported_media_type")
        lane = await http.post(
            "/v1/chat/completions",
            content=b'{"model": "echo", "messages": [{"role": "user", "content": "hi"}]}',
        )
        assert_error(lane, 415, "unsupported_media_type")
        assert (await http.get("/v1/sessions")).json()["data"] == []
