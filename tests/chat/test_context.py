"""The context window, seen where it matters: in the request the engine receives.

Assistant `tiny` has a 120-token window with 40 kept for the answer; its engine is the OpenAI
double, which records every request.
"""

from __future__ import annotations

from typing import Any

from chatgate.chat.context import MESSAGE_OVERHEAD
from chatgate.providers.base import estimate_tokens
from tests.conftest import Caller, Gateway, assert_error, make_token

TINY_SYSTEM = "Be brief."
TINY_WINDOW, TINY_ANSWER = 120, 40


def history_room(user_message: str) -> int:
    """Tokens tiny has for earlier messages next to `user_message` (the double's provider counts
    with `estimate_tokens`)."""
    fixed = estimate_tokens(TINY_SYSTEM) + 2 * MESSAGE_OVERHEAD
    return TINY_WINDOW - TINY_ANSWER - fixed - estimate_tokens(user_message)


def newest_that_fit(history: list[str], room: int) -> list[str]:
    kept: list[str] = []
    used = 0
    for content in reversed(history):
        used += estimate_tokens(content) + MESSAGE_OVERHEAD
        if used > room:
            break
        kept.insert(0, content)
    return kept


async def record(caller: Caller, session_id: str, content: str, role: str = "user") -> None:
    # Only admins and service keys may record assistant messages: the caller, as one.
    admin = {"Authorization": f"Bearer {make_token(caller.user_id, admin=True)}"}
    response = await caller.http.post(
        "/v1/history", json={"session_id": session_id, "role": role, "content": content},
        headers=None if role == "user" else admin,
    )  # fmt: skip
    assert response.status_code == 201, response.text


async def ask(caller: Caller, session_id: str, content: str, **body: Any) -> Any:
    return await caller.http.post(
        f"/v1/sessions/{session_id}/messages", json={"content": content, **body}
    )


def sent_contents(gateway: Gateway) -> list[str]:
    return [m["content"] for m in gateway.double.api.requests[-1]["messages"]]


async def test_the_newest_whole_messages_that_fit_follow_the_system_prompt(
    alice: Caller, gateway: Gateway
) -> None:
    session = await alice.new_session("tiny")
    history = [f"message {i}: " + "abcdefg " * 4 for i in range(6)]
    for i, content in enumerate(history):
        await record(alice, session["id"], content, "user" if i % 2 == 0 else "assistant")
    question = "now?"
    expected = newest_that_fit(history, history_room(question))
    # The window is small enough to drop some, and large enough to keep some.
    assert 0 < len(expected) < len(history)

    response = await ask(alice, session["id"], question)
    assert response.status_code == 200, response.text
    request = gateway.double.api.requests[-1]
    assert request["model"] == "double-tiny" and request["max_tokens"] == TINY_ANSWER
    assert request["messages"][0] == {"role": "system", "content": TINY_SYSTEM}
    assert request["messages"][-1] == {"role": "user", "content": question}
    assert sent_contents(gateway)[1:-1] == expected
    assert [m["role"] for m in request["messages"][1:-1]] == [
        "user" if i % 2 == 0 else "assistant" for i in range(len(history))
    ][-len(expected) :]


async def test_a_long_recent_message_is_never_cut_and_older_ones_stay_out(
    alice: Caller, gateway: Gateway
) -> None:
    session = await alice.new_session("tiny")
    await record(alice, session["id"], "short and old")
    question = "go"
    # One token more than the room left: it cannot come whole, so it does not come at all.
    long_text = "x" * (4 * (history_room(question) - MESSAGE_OVERHEAD))
    assert estimate_tokens(long_text) + MESSAGE_OVERHEAD == history_room(question) + 1
    await record(alice, session["id"], long_text, "assistant")
    assert (await ask(alice, session["id"], question)).status_code == 200
    assert sent_contents(gateway) == [TINY_SYSTEM, question]

    # Once it fits exactly, it comes whole, and the older one still cannot follow it.
    session = await alice.new_session("tiny")
    await record(alice, session["id"], "short and old")
    fitting = long_text[:-4]
    assert estimate_tokens(fitting) + MESSAGE_OVERHEAD == history_room(question)
    await record(alice, session["id"], fitting, "assistant")
    assert (await ask(alice, session["id"], question)).status_code == 200
    assert sent_contents(gateway) == [TINY_SYSTEM, fitting, question]


async def test_a_conversation_slides_its_window_forward(alice: Caller, gateway: Gateway) -> None:
    session = await alice.new_session("tiny")
    asked: list[str] = []
    for i in range(8):
        question = f"question number {i} about the weather"
        response = await ask(alice, session["id"], question)
        assert response.status_code == 200, response.text
        sent = gateway.double.api.requests[-1]["messages"]
        contents = [m["content"] for m in sent]
        assert contents[0] == TINY_SYSTEM and contents[-1] == question
        earlier = contents[1:-1]
        # A contiguous run of the newest turns, each whole, alternating as they were said.
        stored = [m["content"] for m in (await alice.history(session["id"]))["data"]][:-2]
        assert stored[len(stored) - len(earlier) :] == earlier
        assert [m["role"] for m in sent[1:-1]] == (["user", "assistant"] * 8)[
            len(stored) - len(earlier) : len(stored)
        ]
        asked.append(question)
    # By the end the oldest questions have been dropped.
    assert asked[0] not in sent_contents(gateway)
    assert asked[-2] in sent_contents(gateway)


async def test_failed_answers_are_left_out_of_the_context(alice: Caller, gateway: Gateway) -> None:
    session = await alice.new_session("tiny")
    failed = await ask(alice, session["id"], "[[die-after 3]]", response_mode="streaming")
    assert "event: error" in failed.text
    assert (await ask(alice, session["id"], "again")).status_code == 200
    assert sent_contents(gateway) == [TINY_SYSTEM, "[[die-after 3]]", "again"]


async def test_a_message_too_long_for_the_model_is_refused_and_nothing_is_stored(
    alice: Caller, gateway: Gateway
) -> None:
    session = await alice.new_session("tiny")
    await record(alice, session["id"], "earlier")
    before = await alice.history(session["id"])
    calls = len(gateway.double.api.requests)
    too_long = "y" * (4 * history_room("") + 8)
    assert len(too_long) < gateway.settings.max_content_chars
    for mode in ("blocking", "streaming", "async"):
        response = await ask(alice, session["id"], too_long, response_mode=mode)
        assert_error(response, 413, "context_length_exceeded")
    assert len(gateway.double.api.requests) == calls
    assert await alice.history(session["id"]) == before
    stored = (await alice.http.get(f"/v1/sessions/{session['id']}")).json()
    assert stored["message_count"] == 1
    # The same text is fine for an assistant with a larger window.
    roomy = await alice.new_session("echo")
    assert (await ask(alice, roomy["id"], too_long)).status_code == 200
