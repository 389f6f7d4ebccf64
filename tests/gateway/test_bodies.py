"""Bodies at the front door: capped in size before authentication or parsing (with or without a
Content-Length), and JSON only, on the routes and the completions lane alike."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit

import httpx

from chatgate.openai_compat.lane import MAX_BODY_BYTES as CONVERSATION_BYTES
from tests.conftest import Caller, Gateway, assert_error

MIB = 1024 * 1024


async def test_an_oversized_body_is_refused_before_authentication(gateway: Gateway) -> None:
    cap = gateway.settings.max_body_bytes
    big = b'{"assistant_id": "echo", "title": "' + b"x" * cap + b'"}'
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
        # No token: without the cap this body was read and parsed before the 401.
        refused = await http.post(
            "/v1/sessions", content=big, headers={"Content-Type": "application/json"}
        )
        assert_error(refused, 413, "too_large")
        small = await http.post("/v1/sessions", json={"assistant_id": "echo"})
        assert_error(small, 401, "missing_token")


async def test_the_completions_lane_takes_a_larger_body_up_to_its_own_cap(
    gateway: Gateway, alice: Caller
) -> None:
    conversation = b'{"model": "echo", "messages": [{"role": "user", "content": "'
    between = conversation + b"y" * (2 * MIB) + b'"}]}'
    over = conversation + b"y" * (CONVERSATION_BYTES + MIB) + b'"}]}'
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
        # The lane checks credentials before it reads a byte of the body.
        for body in (between, over):
            anonymous = await http.post("/v1/chat/completions", content=body, headers=headers)
            assert anonymous.status_code == 401, anonymous.text
    # Over the ordinary cap, under the lane's: the lane reads it (and judges its content).
    allowed = await alice.http.post("/v1/chat/completions", content=between, headers=headers)
    assert allowed.json()["error"]["code"] != "too_large", allowed.text
    refused = await alice.http.post("/v1/chat/completions", content=over, headers=headers)
    assert refused.status_code == 413, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["type"]) == ("too_large", "invalid_request_error")


async def _post_chunked(
    url: str, path: str, *, chunks: int, size: int, headers: dict[str, str] | None = None
) -> bytes:
    """Sends a chunked body without its last chunk, so only a server that stops reading at its
    cap can answer; returns what the server sent back."""
    address = urlsplit(url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\n{extra}"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        piece = f"{size:x}\r\n".encode() + b"z" * size + b"\r\n"
        for _ in range(chunks):
            writer.write(piece)
            try:
                await asyncio.wait_for(writer.drain(), 5)
            except (ConnectionError, TimeoutError):
                break  # the server stopped reading: its answer is waiting
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()


async def test_a_chunked_body_is_cut_off_while_it_streams_in(gateway: Gateway) -> None:
    cap = gateway.settings.max_body_bytes
    # Twice the cap is sent, and the body never ends: the answer must come all the same.
    answer = await _post_chunked(gateway.url, "/v1/sessions", chunks=32, size=cap // 16)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b'"code":"too_large"' in body.replace(b" ", b"")


async def test_a_body_that_is_not_json_is_refused(alice: Caller, gateway: Gateway) -> None:
    before = (await alice.http.get("/v1/sessions")).json()
    calls = len(gateway.double.api.requests)
    raw = b'{"assistant_id": "echo"}'
    for content_type in (
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
    ):
        headers = {"Content-Type": content_type}
        response = await alice.http.post("/v1/sessions", content=raw, headers=headers)
        assert_error(response, 415, "unsupported_media_type")
        lane = await alice.http.post(
            "/v1/chat/completions",
            content=b'{"model": "echo", "messages": [{"role": "user", "content": "hi"}]}',
            headers=headers,
        )
        assert_error(lane, 415, "unsupported_media_type")
    untyped = await alice.http.post("/v1/sessions", content=raw, headers={"Content-Type": ""})
    assert_error(untyped, 415, "unsupported_media_type")
    assert (await alice.http.get("/v1/sessions")).json() == before
    assert len(gateway.double.api.requests) == calls  # no engine was asked


async def test_json_types_and_bodiless_posts_pass(alice: Caller) -> None:
    for content_type in ("application/json", "application/json; charset=utf-8",
                         "Application/JSON", "application/merge-patch+json"):  # fmt: skip
        created = await alice.http.post(
            "/v1/sessions",
            content=b'{"assistant_id": "echo"}',
            headers={"Content-Type": content_type},
        )
        assert created.status_code == 201, (content_type, created.text)
    # No body, no type: a POST that carries nothing needs no JSON.
    stopped = await alice.http.post(f"/v1/sessions/{created.json()['id']}/stop")
    assert stopped.status_code == 200, stopped.text
    missing = await alice.http.post(f"/v1/sessions/{uuid.uuid4()}/stop")
    assert_error(missing, 404, "session_not_found")


async def test_a_chunked_body_on_the_lane_is_cut_off_at_the_lanes_cap(alice: Caller) -> None:
    # With a token, the lane reads the body: it is cut off past its cap, as it streams in.
    token = alice.http.headers["Authorization"]
    chunks = CONVERSATION_BYTES // MIB + 8
    answer = await _post_chunked(
        str(alice.http.base_url), "/v1/chat/completions", chunks=chunks, size=MIB,
        headers={"Authorization": token},
    )  # fmt: skip
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b'"code":"too_large"' in body.replace(b" ", b"")
