"""`POST /v1/qa`: one question in, one answer out; a session id continues the conversation."""

from __future__ import annotations

import httpx

from tests.conftest import Caller, Gateway, make_token


async def test_question_without_session_makes_one_and_answers(alice: Caller) -> None:
    response = await alice.http.post(
        "/v1/qa", json={"question": "what are your hours", "assistant_id": "support"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"] == "echo: what are your hours"
    assert body["trace_id"] == response.headers["x-trace-id"]
    session = (await alice.http.get(f"/v1/sessions/{body['session_id']}")).json()
    assert session["assistant_id"] == "support" and session["message_count"] == 2


async def test_session_id_continues_the_conversation(alice: Caller, gateway: Gateway) -> None:
    first = (
        await alice.http.post("/v1/qa", json={"question": "first", "assistant_id": "echo"})
    ).json()
    second = await alice.http.post(
        "/v1/qa", json={"question": "second", "session_id": first["session_id"]}
    )
    assert second.json()["session_id"] == first["session_id"]
    sent = [m["content"] for m in gateway.double.api.requests[-1]["messages"]]
    assert sent == ["Echo the user.", "first", "echo: first", "second"]


async def test_foreign_session_and_other_users_are_refused(alice: Caller, bob: Caller) -> None:
    mine = (await alice.http.post("/v1/qa", json={"question": "hi", "assistant_id": "echo"})).json()
    stolen = await bob.http.post("/v1/qa", json={"question": "x", "session_id": mine["session_id"]})
    assert stolen.status_code == 404
    assert stolen.json()["error"]["code"] == "session_not_found"
    acting = await bob.http.post("/v1/qa", json={"question": "x", "user_id": alice.user_id})
    assert acting.status_code == 403
    assert acting.json()["error"]["code"] == "acting_for_user_forbidden"


async def test_admin_may_ask_for_an_end_user(gateway: Gateway, alice: Caller) -> None:
    headers = {"Authorization": f"Bearer {make_token('backend', admin=True)}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as backend:
        response = await backend.post(
            "/v1/qa",
            json={"question": "for alice", "user_id": alice.user_id, "assistant_id": "echo"},
        )
    assert response.status_code == 200
    owned = await alice.http.get(f"/v1/sessions/{response.json()['session_id']}")
    assert owned.status_code == 200


async def test_bad_questions_store_nothing(alice: Caller) -> None:
    before = (await alice.http.get("/v1/sessions")).json()["data"]
    for body, status, code in [
        ({"question": "  "}, 400, "empty_content"),
        ({"question": "x" * 3000}, 413, "content_too_large"),
        ({"question": "x", "assistant_id": "nope"}, 404, "assistant_not_found"),
        ({"question": 5}, 422, "validation_error"),
        ({"question": "x", "session_id": "not-a-uuid"}, 422, "validation_error"),
    ]:
        response = await alice.http.post("/v1/qa", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["code"] == code
    assert (await alice.http.get("/v1/sessions")).json()["data"] == before


async def test_engine_failure_is_reported_with_its_status(alice: Caller) -> None:
    response = await alice.http.post(
        "/v1/qa", json={"question": "[[status 503]]", "assistant_id": "echo"}
    )
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_error"
