"""`/v1/chat/completions` is served by a lane past FastAPI's routing: what a route would have
given for free (405, a body limit, the OpenAPI entry, auth before parsing) still holds."""

from __future__ import annotations

import httpx

from chatgate.openai_compat.lane import MAX_BODY_BYTES
from tests.conftest import Gateway, make_token

URL = "/v1/chat/completions"


def _client(gateway: Gateway, user: str = "lane-user") -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {make_token(user)}"}
    return httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=30)


async def test_other_methods_are_405_with_allow(gateway: Gateway) -> None:
    async with _client(gateway) as http:
        response = await http.get(URL)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.headers["x-trace-id"]
    assert response.json()["error"]["trace_id"] == response.headers["x-trace-id"]


async def test_a_body_over_the_limit_is_413_in_openai_shape(gateway: Gateway) -> None:
    content = "x" * (MAX_BODY_BYTES + 1)
    body = {"model": "echo", "messages": [{"role": "user", "content": content}]}
    sent = len(gateway.double.api.requests)
    async with _client(gateway) as http:
        response = await http.post(URL, json=body)
    assert response.status_code == 413
    error = response.json()["error"]
    assert (error["code"], error["type"]) == ("too_large", "invalid_request_error")
    assert len(gateway.double.api.requests) == sent  # nothing reached the engine


async def test_credentials_are_checked_before_the_body(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        anonymous = await http.post(URL, content=b"{not json")
    async with _client(gateway) as http:
        signed = await http.post(URL, content=b"{not json")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "authentication_error"
    assert signed.status_code == 400
    assert signed.json()["error"]["code"] == "invalid_json"


async def test_the_openapi_document_lists_the_lane(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        document = (await http.get("/openapi.json")).json()
    operation = document["paths"][URL]["post"]
    assert operation["requestBody"]["required"] is True
    assert "/v1/models" in document["paths"]


async def test_finished_streams_give_their_engine_connection_back(gateway: Gateway) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "a b c"}], "stream": True}
    before = set(gateway.double.api.peers)
    async with _client(gateway, "lane-reuse") as http:
        for _ in range(10):
            response = await http.post(URL, json=body)
            assert response.status_code == 200
            assert response.text.rstrip().endswith("data: [DONE]")
    # Ten answers one after another: one pooled connection (at most one new), not one each.
    assert len(gateway.double.api.peers - before) <= 1, gateway.double.api.peers - before
