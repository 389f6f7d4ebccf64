"""Bad input: refused with the error envelope and a fitting status, never a 500, nothing stored."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import Caller, Gateway, assert_error, make_token, open_caller


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def snapshot(caller: Caller, session_id: str) -> dict[str, Any]:
    """Everything a refused request must leave as it was."""
    return {
        "session": (await caller.http.get(f"/v1/sessions/{session_id}")).json(),
        "history": await caller.history(session_id),
        "sessions": (await caller.http.get("/v1/sessions", params={"limit": 100})).json(),
    }


@pytest.fixture
async def session(alice: Caller) -> dict[str, Any]:
    created = await alice.new_session("echo")
    turn = await alice.http.post(
        f"/v1/sessions/{created['id']}/messages", json={"content": "hello from the bad-input suite"}
    )
    assert turn.status_code == 200
    return created


@pytest.mark.parametrize("content", ["", " ", "  \n\t  ", "\u3000\u00a0"])
async def test_empty_or_blank_content_is_refused(
    alice: Caller, gateway: Gateway, session: dict[str, Any], content: str
) -> None:
    before = await snapshot(alice, session["id"])
    calls = len(gateway.double.api.requests)
    for mode in ("blocking", "streaming", "async"):
        response = await alice.http.post(
            f"/v1/sessions/{session['id']}/messages",
            json={"content": content, "response_mode": mode},
        )
        assert_error(response, 400, "empty_content")
    for role in ("user", "assistant", "system"):
        response = await alice.http.post(
            "/v1/history", json={"session_id": session["id"], "role": role, "content": content}
        )
        assert_error(response, 400, "empty_content")
    assert await snapshot(alice, session["id"]) == before
    assert len(gateway.double.api.requests) == calls


async def test_content_over_the_limit_is_refused(
    alice: Caller, gateway: Gateway, session: dict[str, Any]
) -> None:
    limit = gateway.settings.max_content_chars
    before = await snapshot(alice, session["id"])
    for content in ("a" * (limit + 1), "字" * (limit + 1), "a" * 100_000):
        sent = await alice.http.post(
            f"/v1/sessions/{session['id']}/messages", json={"content": content}
        )
        assert_error(sent, 413, "content_too_large")
        recorded = await alice.http.post(
            "/v1/history", json={"session_id": session["id"], "role": "user", "content": content}
        )
        assert_error(recorded, 413, "content_too_large")
    assert await snapshot(alice, session["id"]) == before
    # The limit itself is allowed.
    at_limit = await alice.http.post(
        "/v1/history", json={"session_id": session["id"], "role": "user", "content": "b" * limit}
    )
    assert at_limit.status_code == 201


async def test_unknown_assistant(alice: Caller, session: dict[str, Any]) -> None:
    before = await snapshot(alice, session["id"])
    for name in ("nobody", "ECHO", "echo ", "a" * 64):
        response = await alice.http.post("/v1/sessions", json={"assistant_id": name})
        assert_error(response, 404, "assistant_not_found")
        response = await alice.http.post(
            "/v1/sessions", json={"assistant_id": name, "id": str(uuid.uuid4())}
        )
        assert_error(response, 404, "assistant_not_found")
    assert await snapshot(alice, session["id"]) == before


JSON_ENDPOINTS = [
    ("POST", "/v1/sessions"),
    ("PATCH", "/v1/sessions/{sid}"),
    ("POST", "/v1/sessions/{sid}/messages"),
    ("POST", "/v1/history"),
    ("POST", "/v1/switch-assistant"),
]


async def test_malformed_json(alice: Caller, session: dict[str, Any]) -> None:
    before = await snapshot(alice, session["id"])
    for method, path in JSON_ENDPOINTS:
        for raw in (b'{"content": "hi"', b"{'content': 'hi'}", b"not json", b"{"):
            response = await alice.http.request(
                method,
                path.format(sid=session["id"]),
                content=raw,
                headers={"Content-Type": "application/json"},
            )
            assert_error(response, 400, "invalid_json")
    assert await snapshot(alice, session["id"]) == before


WRONG_BODIES: list[tuple[str, str, Any]] = [
    ("POST", "/v1/sessions", {"assistant_id": 5}),
    ("POST", "/v1/sessions", {}),
    ("POST", "/v1/sessions", {"assistant_id": "echo", "id": "not-a-uuid"}),
    ("POST", "/v1/sessions", {"assistant_id": "echo", "title": ["a"]}),
    ("POST", "/v1/sessions", {"assistant_id": "echo", "title": "t" * 201}),
    ("POST", "/v1/sessions", []),
    ("POST", "/v1/sessions", "echo"),
    ("PATCH", "/v1/sessions/{sid}", {"title": 7}),
    ("PATCH", "/v1/sessions/{sid}", {}),
    ("POST", "/v1/sessions/{sid}/messages", {"content": 5}),
    ("POST", "/v1/sessions/{sid}/messages", {"content": None}),
    ("POST", "/v1/sessions/{sid}/messages", {"content": ["hi"]}),
    ("POST", "/v1/sessions/{sid}/messages", {"text": "hi"}),
    ("POST", "/v1/sessions/{sid}/messages", {"content": "hi", "response_mode": "fast"}),
    ("POST", "/v1/history", {"session_id": "{sid}", "role": "robot", "content": "hi"}),
    ("POST", "/v1/history", {"session_id": "{sid}", "role": "user", "content": {"a": 1}}),
    ("POST", "/v1/history", {"session_id": "{sid}", "content": "hi"}),
    ("POST", "/v1/history", {"session_id": 12, "role": "user", "content": "hi"}),
    ("POST", "/v1/history", {"session_id": "nope", "role": "user", "content": "hi"}),
    ("POST", "/v1/switch-assistant", {"assistant_id": None}),
]


async def test_wrong_types_and_missing_fields(alice: Caller, session: dict[str, Any]) -> None:
    before = await snapshot(alice, session["id"])
    for method, path, body in WRONG_BODIES:
        if isinstance(body, dict):
            body = {k: session["id"] if v == "{sid}" else v for k, v in body.items()}
        response = await alice.http.request(method, path.format(sid=session["id"]), json=body)
        error = assert_error(response, 422, "validation_error")["error"]
        assert error["details"], (method, path, body)
        assert all("field" in d and "problem" in d for d in error["details"])
    assert await snapshot(alice, session["id"]) == before


BAD_LIMITS: list[tuple[str, dict[str, Any]]] = [
    ("/v1/sessions", {"limit": 0}),
    ("/v1/sessions", {"limit": 101}),
    ("/v1/sessions", {"limit": -5}),
    ("/v1/sessions", {"limit": "ten"}),
    ("/v1/sessions", {"limit": "1e3"}),
    ("/v1/sessions", {"limit": 10**30}),
    ("/v1/history/{sid}", {"limit": 0}),
    ("/v1/history/{sid}", {"limit": 201}),
    ("/v1/history/{sid}", {"limit": "all"}),
]


async def test_out_of_range_limits(alice: Caller, session: dict[str, Any]) -> None:
    for path, params in BAD_LIMITS:
        response = await alice.http.get(path.format(sid=session["id"]), params=params)
        assert_error(response, 422, "validation_error")


async def every_session_endpoint(http: httpx.AsyncClient, sid: str) -> list[httpx.Response]:
    return [
        await http.get(f"/v1/sessions/{sid}"),
        await http.patch(f"/v1/sessions/{sid}", json={"title": "x"}),
        await http.delete(f"/v1/sessions/{sid}"),
        await http.get(f"/v1/history/{sid}"),
        await http.post(f"/v1/sessions/{sid}/messages", json={"content": "hi"}),
        await http.post(f"/v1/sessions/{sid}/stop"),
    ]


async def test_unknown_session(alice: Caller, session: dict[str, Any]) -> None:
    before = await snapshot(alice, session["id"])
    missing = str(uuid.uuid4())
    for response in await every_session_endpoint(alice.http, missing):
        assert_error(response, 404, "session_not_found")
    recorded = await alice.http.post(
        "/v1/history", json={"session_id": missing, "role": "user", "content": "hi"}
    )
    assert_error(recorded, 404, "session_not_found")
    assert_error(await alice.http.get(f"/v1/tasks/{missing}"), 404, "task_not_found")
    # A session's own id is not a task.
    assert_error(await alice.http.get(f"/v1/tasks/{session['id']}"), 404, "task_not_found")
    assert await snapshot(alice, session["id"]) == before


async def test_ids_that_are_not_uuids(alice: Caller, session: dict[str, Any]) -> None:
    before = await snapshot(alice, session["id"])
    for bad in ("not-a-uuid", "123", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", "x" * 300):
        for response in await every_session_endpoint(alice.http, bad):
            assert_error(response, 422, "invalid_session_id")
        assert_error(await alice.http.get(f"/v1/tasks/{bad}"), 422, "invalid_task_id")
    assert await snapshot(alice, session["id"]) == before


async def test_bad_cursor(alice: Caller, session: dict[str, Any]) -> None:
    for cursor in (
        "!!!",
        "abc",
        b64("no separator here"),
        b64("2024-01-01T00:00:00+00:00|not-a-uuid"),
        b64(f"yesterday|{uuid.uuid4()}"),
        b64(f"2024-13-45T99:00:00+00:00|{uuid.uuid4()}"),
        base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),
    ):
        response = await alice.http.get("/v1/sessions", params={"cursor": cursor})
        assert_error(response, 400, "invalid_cursor")


async def test_a_cursor_from_far_away_pages_normally(
    alice: Caller, session: dict[str, Any]
) -> None:
    future = b64(f"2999-01-01T00:00:00+00:00|{uuid.uuid4()}")
    page = (await alice.http.get("/v1/sessions", params={"cursor": future})).json()
    assert [s["id"] for s in page["data"]] == [session["id"]]
    past = b64(f"1999-01-01T00:00:00+00:00|{uuid.uuid4()}")
    assert (await alice.http.get("/v1/sessions", params={"cursor": past})).json()["data"] == []


@pytest.mark.parametrize("text", ["nul \x00 inside", "\x00"])
async def test_text_no_database_can_store_is_refused(
    alice: Caller, session: dict[str, Any], text: str
) -> None:
    before = await snapshot(alice, session["id"])
    sid = session["id"]
    sent = await alice.http.post(f"/v1/sessions/{sid}/messages", json={"content": text})
    assert_error(sent, 400, "invalid_content")
    recorded = await alice.http.post(
        "/v1/history", json={"session_id": sid, "role": "user", "content": text}
    )
    assert_error(recorded, 400, "invalid_content")
    for response in [
        await alice.http.post("/v1/sessions", json={"assistant_id": "echo", "title": text}),
        await alice.http.patch(f"/v1/sessions/{sid}", json={"title": text}),
        await alice.http.get("/v1/sessions", params={"assistant_id": text}),
    ]:
        assert_error(response, 422, "validation_error")
    switched = await alice.http.post("/v1/switch-assistant", json={"assistant_id": text})
    assert_error(switched, 404, "assistant_not_found")
    assert await snapshot(alice, session["id"]) == before


async def test_wrong_method_and_unknown_path_use_the_envelope(
    alice: Caller, session: dict[str, Any]
) -> None:
    assert_error(await alice.http.put(f"/v1/sessions/{session['id']}"), 405, "method_not_allowed")
    assert_error(await alice.http.get("/v1/nothing-here"), 404, "not_found")


LONE_SURROGATES = ['"x\\ud800"', '"\\udfff tail"', '"\\ud83d"', '"pair \\ude00\\ud83d reversed"']


async def post_raw(caller: Caller, method: str, path: str, body: str) -> httpx.Response:
    """A body as raw JSON text: `\\ud800` escapes parse into lone surrogates, which no encoder
    (hence no client's `json=`) would produce and no database can store."""
    headers = {"Content-Type": "application/json"}
    return await caller.http.request(method, path, content=body.encode(), headers=headers)


@pytest.mark.parametrize("text", LONE_SURROGATES)
async def test_text_with_a_lone_surrogate_is_refused(
    alice: Caller, gateway: Gateway, session: dict[str, Any], text: str
) -> None:
    before = await snapshot(alice, session["id"])
    calls = len(gateway.double.api.requests)
    sid = session["id"]
    for mode in ("blocking", "streaming", "async"):
        sent = await post_raw(
            alice, "POST", f"/v1/sessions/{sid}/messages",
            f'{{"content": {text}, "response_mode": "{mode}"}}',
        )  # fmt: skip
        assert_error(sent, 400, "invalid_content")
    recorded = await post_raw(
        alice,
        "POST",
        "/v1/history",
        f'{{"session_id": "{sid}", "role": "user", "content": {text}}}',
    )
    assert_error(recorded, 400, "invalid_content")
    # /v1/qa made a session for the question and left it behind, empty, with a 500.
    asked = await post_raw(
        alice, "POST", "/v1/qa", f'{{"question": {text}, "assistant_id": "echo"}}'
    )
    assert_error(asked, 400, "invalid_content")
    for method, path, body in [
        ("POST", "/v1/sessions", f'{{"assistant_id": "echo", "title": {text}}}'),
        ("PATCH", f"/v1/sessions/{sid}", f'{{"title": {text}}}'),
        ("POST", "/v1/switch-assistant", f'{{"assistant_id": {text}}}'),
    ]:
        assert_error(await post_raw(alice, method, path, body), 422, "validation_error")
    assert await snapshot(alice, session["id"]) == before
    assert len(gateway.double.api.requests) == calls


async def test_a_surrogate_pair_is_an_ordinary_character(
    alice: Caller, session: dict[str, Any]
) -> None:
    sent = await post_raw(
        alice, "POST", "/v1/history",
        f'{{"session_id": "{session["id"]}", "role": "user", "content": "smile \\ud83d\\ude00"}}',
    )  # fmt: skip
    assert sent.status_code == 201, sent.text
    assert sent.json()["content"] == "smile \U0001f600"


async def test_a_cursor_without_a_time_zone_is_refused(alice: Caller) -> None:
    for stamp in ("2024-01-01T00:00:00", "2999-01-01 12:30"):
        cursor = b64(f"{stamp}|{uuid.uuid4()}")
        response = await alice.http.get("/v1/sessions", params={"cursor": cursor})
        assert_error(response, 400, "invalid_cursor")


async def test_a_token_whose_user_id_holds_a_lone_surrogate_is_refused(gateway: Gateway) -> None:
    # PyJWT writes the claim as a `\ud800` escape; json.loads makes it a lone surrogate again.
    token = make_token("user-\ud800")
    async with open_caller(gateway.url, token=token) as caller:
        for response in (
            await caller.http.get("/v1/sessions"),
            await caller.http.post("/v1/sessions", json={"assistant_id": "echo"}),
        ):
            assert_error(response, 401, "invalid_token")
