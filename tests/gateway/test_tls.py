"""TLS on the wire: `chatgate serve --ssl-certfile --ssl-keyfile` as a real process, asked by an
HTTPS client that trusts only the certificate made here; HSTS on every answer over TLS (and,
opted in, behind a trusted proxy that reports https), never over plain HTTP."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from chatgate.core.policies import AccessSettings
from tests.conftest import Double, remote_only_settings, serve_chatgate
from tests.gateway.tls_certificate import self_signed
from tests.serve_process import CHATGATE, chatgate_serve, serve_environment

HSTS = "max-age=31536000; includeSubDomains"


def double_config(double: Double) -> dict[str, object]:
    provider = {
        "id": "up", "type": "openai", "base_url": f"{double.url}/v1", "api_key_env": "UP_KEY"
    }  # fmt: skip
    assistant = {"id": "echo", "name": "Echo", "provider": "up", "model": "double-echo"}
    return {"providers": [provider], "assistants": [assistant]}


def test_https_answers_carry_hsts_and_plain_http_gets_no_answer(
    tmp_path: Path, openai_double: Double
) -> None:
    files = self_signed(tmp_path)
    trust = ssl.create_default_context(cafile=str(files.certfile))
    with chatgate_serve(
        tmp_path, double_config(openai_double),
        "--ssl-certfile", str(files.certfile), "--ssl-keyfile", str(files.keyfile),
        env=serve_environment(tmp_path, CHATGATE_AUTH_MODE="none", UP_KEY="sk-double"),
        verify=trust,
    ) as served:  # fmt: skip
        with httpx.Client(base_url=served.url, verify=trust, timeout=10) as https:
            for path, status in (("/health", 200), ("/v1/assistants", 200), ("/nowhere", 404)):
                response = https.get(path)
                assert response.status_code == status, response.text
                assert response.headers["strict-transport-security"] == HSTS, path
            session = https.post("/v1/sessions", json={"assistant_id": "echo"}).json()
            answer = https.post(f"/v1/sessions/{session['id']}/messages", json={"content": "hi"})
            assert answer.json()["message"]["content"] == "echo: hi", answer.text
            assert answer.headers["strict-transport-security"] == HSTS
        plain = served.url.replace("https://", "http://")
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{plain}/health", timeout=5)
        # Only the certificate's own trust lets a client in: it really is that certificate.
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{served.url}/health", timeout=5)


def serve_refusal(tmp_path: Path, *args: str, **env: str) -> str:
    result = subprocess.run(
        [CHATGATE, "serve", *args], env=serve_environment(tmp_path, **env), cwd=tmp_path,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "chatgate.db").exists()  # refused before touching the database
    return result.stderr


def test_a_missing_or_unusable_certificate_or_key_is_a_start_up_error(tmp_path: Path) -> None:
    files = self_signed(tmp_path)
    other = self_signed(tmp_path, "other")
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key", encoding="utf-8")
    missing = tmp_path / "missing.crt"
    cert, key = str(files.certfile), str(files.keyfile)

    stderr = serve_refusal(tmp_path, CHATGATE_SSL_CERTFILE=str(missing), CHATGATE_SSL_KEYFILE=key)
    assert f"TLS certificate file {missing} does not exist" in stderr
    stderr = serve_refusal(tmp_path, "--ssl-certfile", cert, "--ssl-keyfile", str(tmp_path))
    assert f"TLS key file {tmp_path} is a directory" in stderr
    stderr = serve_refusal(tmp_path, "--ssl-certfile", cert, "--ssl-keyfile", str(garbage))
    assert f"cannot serve TLS with certificate {cert} and key {garbage}" in stderr
    stderr = serve_refusal(tmp_path, "--ssl-certfile", cert, "--ssl-keyfile", str(other.keyfile))
    assert "cannot serve TLS" in stderr and "KEY_VALUES_MISMATCH" in stderr
    stderr = serve_refusal(tmp_path, "--ssl-certfile", cert)
    assert "a certificate is set but no key" in stderr
    stderr = serve_refusal(tmp_path, CHATGATE_ACCESS__HSTS_BEHIND_PROXY="true")
    assert "CHATGATE_ACCESS__TRUSTED_PROXIES" in stderr


@pytest.mark.parametrize(
    ("access", "proto", "hsts"),
    [
        (AccessSettings(), "https", False),  # plain HTTP, no proxy believed
        (AccessSettings(trusted_proxies=["127.0.0.1/32"]), "https", False),  # not opted in
        (AccessSettings(trusted_proxies=["127.0.0.1/32"], hsts_behind_proxy=True), "https", True),
        (AccessSettings(trusted_proxies=["127.0.0.1/32"], hsts_behind_proxy=True), "http", False),
        (AccessSettings(trusted_proxies=["127.0.0.1/32"], hsts_behind_proxy=True), None, False),
        (AccessSettings(trusted_proxies=["10.0.0.0/8"], hsts_behind_proxy=True), "https", False),
    ],
)
async def test_plain_http_has_no_hsts_unless_a_trusted_proxy_reports_https(
    tmp_path: Path, openai_double: Double, access: AccessSettings, proto: str | None, hsts: bool
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path}/chatgate.db"
    settings = remote_only_settings(database_url, openai_double.url, access=access)
    headers = {"X-Forwarded-Proto": proto} if proto else {}
    async with serve_chatgate(settings) as url, httpx.AsyncClient(base_url=url) as http:
        for path in ("/health", "/v1/assistants"):
            response = await http.get(path, headers=headers)
            assert response.headers.get("strict-transport-security") == (HSTS if hsts else None)
