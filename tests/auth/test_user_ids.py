"""User ids hold no control characters wherever they come in: a JWT's `sub`, the user of a key
made with the admin key API, and the end user a service key names (`X-Chatgate-User`, a body's
`user_id`). A NUL was a 500 on PostgreSQL; every one of them is now a 4xx with a code."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import jwt
import pytest

from tests.auth.test_jwt import claims, get_sessions
from tests.conftest import JWT_SECRET, Gateway, assert_error, make_token

CONTROLLED = ["nul\x00user", "tab\tuser", "newline\nuser", "del\x7fuser", "c1\x85user"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def admin(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    headers = bearer(make_token("user-id-admin", admin=True))
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as client:
        yield client


@pytest.fixture
async def service(admin: httpx.AsyncClient, gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    created = await admin.post("/v1/admin/keys", json={"name": "ids", "kind": "service"})
    assert created.status_code == 201, created.text
    headers = bearer(created.json()["secret"])
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=30) as client:
        yield client


@pytest.mark.parametrize("user_id", CONTROLLED)
async def test_the_admin_key_api_refuses_a_user_id_with_control_characters(
    admin: httpx.AsyncClient, user_id: str
) -> None:
    for kind in ("user", "service"):
        body = {"name": "bad", "kind": kind, "user_id": user_id}
        response = await admin.post("/v1/admin/keys", json=body)
        assert_error(response, 422, "validation_error")
        assert "control character" in response.json()["error"]["message"]


async def test_an_end_user_with_control_characters_is_400(service: httpx.AsyncClient) -> None:
    # What a header can carry: a tab, and raw bytes 0x80-0x9f (C1 controls once decoded as
    # Latin-1). A NUL or a newline in a header is refused by the HTTP server itself.
    for raw in (b"tab\tuser", b"c1\x85user", b"c1\x9fuser"):
        response = await service.post(
            "/v1/sessions", json={"assistant_id": "echo"}, headers={"X-Chatgate-User": raw}
        )
        assert_error(response, 400, "invalid_end_user")
    for user_id in CONTROLLED:
        response = await service.post(
            "/v1/qa", json={"question": "hi", "assistant_id": "echo", "user_id": user_id}
        )
        assert_error(response, 400, "invalid_end_user")
    # Ordinary end users still work, non-ASCII ones in a body included.
    fine = await service.post(
        "/v1/sessions", json={"assistant_id": "echo"}, headers={"X-Chatgate-User": "shopper-42"}
    )
    assert fine.status_code == 201, fine.text
    asked = await service.post(
        "/v1/qa", json={"question": "hi", "assistant_id": "echo", "user_id": "张三 42"}
    )
    assert asked.status_code == 200, asked.text
    # A header's UTF-8 names the same end user as a body does.
    named = {"X-Chatgate-User": "张三 42".encode()}
    made = await service.post("/v1/sessions", json={"assistant_id": "echo"}, headers=named)
    assert made.status_code == 201, made.text
    listed = await service.get("/v1/sessions", headers=named)
    assert made.json()["id"] in [s["id"] for s in listed.json()["data"]]
    assert asked.json()["session_id"] in [s["id"] for s in listed.json()["data"]]


@pytest.mark.parametrize("subject", CONTROLLED)
async def test_a_token_subject_with_control_characters_is_401(
    gateway: Gateway, subject: str
) -> None:
    token = jwt.encode(claims(subject), JWT_SECRET)
    assert_error(await get_sessions(gateway.url, f"Bearer {token}"), 401, "invalid_token")
