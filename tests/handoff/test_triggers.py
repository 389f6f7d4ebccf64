"""What hands a conversation to a person, over real HTTP turns: the user asking (English and
Chinese, every response mode), the engine chain failing (an error, or the canned answer), a guard
blocking twice; and that while a person has it the engine is not called, until it is released."""

from __future__ import annotations

import asyncio

from chatgate.core.policies import HANDOFF_MESSAGE
from tests.conftest import Caller, assert_error, parse_sse
from tests.handoff.conftest import NOTICE, PHONE, Desk, handoff_of, send


def engine_saw(desk: Desk, text: str) -> bool:
    return any(
        text in str(m.get("content")) for body in desk.double.api.requests for m in body["messages"]
    )


async def test_asking_for_a_person_stores_the_message_and_calls_no_engine(
    desk: Desk, user: Caller
) -> None:
    session = await user.new_session("h-ask")
    assert session["handoff"] is None
    response = await send(user, session["id"], "I want to talk to a human, order 771")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_message"]["content"] == "I want to talk to a human, order 771"
    assert body["message"]["role"] == "assistant" and body["message"]["content"] == NOTICE
    assert body["message"]["provider"] is None and body["message"]["model"] is None
    assert body["handoff"] == {"status": "waiting", "reason": "requested"}
    assert await handoff_of(user, session["id"]) == {"status": "waiting", "reason": "requested"}
    # While waiting, a message is kept for the person and the engine is not asked.
    later = await send(user, session["id"], "hello? still there, ticket 99x")
    assert later.status_code == 200, later.text
    assert later.json()["message"] is None
    assert later.json()["handoff"] == {"status": "waiting", "reason": "requested"}
    assert not engine_saw(desk, "order 771") and not engine_saw(desk, "ticket 99x")
    history = await user.history(session["id"])
    assert [(m["role"], m["content"]) for m in history["data"]] == [
        ("user", "I want to talk to a human, order 771"),
        ("assistant", NOTICE),
        ("user", "hello? still there, ticket 99x"),
    ]
    listing = (await user.http.get("/v1/sessions", params={"assistant_id": "h-ask"})).json()
    assert listing["data"][0]["handoff"] == {"status": "waiting", "reason": "requested"}


async def test_a_streamed_request_in_chinese_gets_one_handoff_event(
    desk: Desk, user: Caller
) -> None:
    session = await user.new_session("h-nohook")
    response = await send(user, session["id"], "你好，转人工", mode="streaming")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    assert [e["event"] for e in events] == ["handoff"]
    data = events[0]["data"]
    assert data["message"]["content"] == HANDOFF_MESSAGE  # the policy's default, bilingual
    assert data["handoff"] == {"status": "waiting", "reason": "requested"}
    again = await send(user, session["id"], "在吗", mode="streaming")
    (event,) = parse_sse(again.text)
    assert event["event"] == "handoff" and event["data"]["message"] is None
    # An async send has no task to wait for: the same JSON as a blocking one.
    queued = await send(user, session["id"], "还在等", mode="async")
    assert queued.status_code == 200 and queued.json()["message"] is None


async def test_without_a_policy_the_assistant_answers_a_request(desk: Desk, user: Caller) -> None:
    session = await user.new_session("h-off")
    response = await send(user, session["id"], "talk to a human")
    assert response.status_code == 200, response.text
    assert response.json()["message"]["content"] == "echo: talk to a human"
    assert response.json()["handoff"] is None
    assert await handoff_of(user, session["id"]) is None


async def test_a_failed_engine_chain_hands_off_after_telling_the_user(
    desk: Desk, user: Caller
) -> None:
    session = await user.new_session("h-fail")
    failed = await send(user, session["id"], "[[status 400]] why is my bill high")
    assert failed.status_code >= 400, failed.text
    assert failed.json()["message"]["status"] == "failed"
    assert await handoff_of(user, session["id"]) == {"status": "waiting", "reason": "engine_failed"}
    history = await user.history(session["id"])
    assert [m["role"] for m in history["data"]] == ["user", "assistant", "assistant"]
    assert history["data"][-1]["content"] == HANDOFF_MESSAGE
    held = await send(user, session["id"], "anyone? code 5521")
    assert held.json()["message"] is None and not engine_saw(desk, "code 5521")


async def test_a_canned_answer_hands_off_too(desk: Desk, user: Caller) -> None:
    session = await user.new_session("h-canned")
    response = await send(user, session["id"], "[[status 400]] hello", mode="streaming")
    assert response.status_code == 200, response.text
    end = parse_sse(response.text)[-1]
    assert end["event"] == "message_end"
    assert end["data"]["message"]["content"] == "The assistant is busy. 当前系统繁忙。"
    assert await handoff_of(user, session["id"]) == {"status": "waiting", "reason": "engine_failed"}


async def test_a_guard_blocking_twice_hands_off(desk: Desk, user: Caller) -> None:
    session = await user.new_session("h-guard")
    assert_error(await send(user, session["id"], f"call me on {PHONE}"), 422, "pii_blocked")
    assert await handoff_of(user, session["id"]) is None
    ok = await send(user, session["id"], "what are your opening hours")
    assert ok.status_code == 200 and ok.json()["handoff"] is None
    assert_error(await send(user, session["id"], f"it is {PHONE}"), 422, "pii_blocked")
    assert await handoff_of(user, session["id"]) == {"status": "waiting", "reason": "guard_blocked"}
    history = await user.history(session["id"])
    assert history["data"][-1]["content"] == HANDOFF_MESSAGE
    held = await send(user, session["id"], "hello again 4410")
    assert held.json()["message"] is None and not engine_saw(desk, "hello again 4410")


async def test_two_requests_at_once_start_one_handoff(desk: Desk, user: Caller) -> None:
    session = await user.new_session("h-nohook")
    first, second = await asyncio.gather(
        send(user, session["id"], "human please"), send(user, session["id"], "转人工")
    )
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    notices = [r.json()["message"] for r in (first, second) if r.json()["message"]]
    assert len(notices) == 1
    history = await user.history(session["id"])
    assert sorted(m["role"] for m in history["data"]) == ["assistant", "user", "user"]
    assert await handoff_of(user, session["id"]) == {"status": "waiting", "reason": "requested"}
