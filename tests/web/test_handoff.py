"""A conversation handed to a person, in a real browser: the user asks for one and sees the
banner, a person's reply (sent through the admin API) appears without a reload, and once the
person releases the session the assistant answers again."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from chatgate.core.policies import HANDOFF_MESSAGE
from tests.web.conftest import Chat


@pytest.fixture
def support_hands_off(api: httpx.Client) -> Iterator[None]:
    """The Support assistant hands off on request for this test only."""
    policy = {"handoff": {"on_request": True}}
    assert api.patch("/v1/admin/assistants/support", json=policy).status_code == 200
    try:
        yield
    finally:
        api.patch("/v1/admin/assistants/support", json={"handoff": None})


def test_a_persons_reply_reaches_the_open_page_and_the_assistant_comes_back(
    chat: Chat, api: httpx.Client, support_hands_off: None
) -> None:
    chat.open()
    chat.tab("Support").click()
    chat.wait_ready()
    banner = chat.page.locator("#handoff-banner")
    expect(banner).to_be_hidden()
    chat.send("I want to talk to a human please")

    expect(banner).to_be_visible()
    expect(banner).to_contain_text("You asked for a person")
    notice = chat.last_answer()
    expect(notice.locator(".msg-body")).to_have_text(HANDOFF_MESSAGE)
    expect(notice.locator(".badge")).to_have_text("Notice")
    session_id = chat.session_id()
    # Marks this page: a reload would lose it.
    chat.page.evaluate("window.__sameDocument = true")

    words = {"content": "Hello, this is Li from support."}
    reply = api.post(f"/v1/admin/handoffs/{session_id}/reply", json=words)
    assert reply.status_code == 201, reply.text
    agent = chat.page.locator("#messages > li.msg-agent")
    expect(agent).to_have_count(1)
    expect(agent.locator(".msg-role")).to_have_text("Agent")
    expect(agent.locator(".msg-body")).to_have_text("Hello, this is Li from support.")
    expect(banner).to_contain_text("A person is answering you")
    assert chat.page.evaluate("window.__sameDocument") is True

    # While the person has it, a message goes to them: no answer is written for it.
    answers = chat.answers.count()
    chat.send("Thanks Li, order 5521 please")
    expect(chat.messages.last.locator(".msg-body")).to_have_text("Thanks Li, order 5521 please")
    expect(chat.messages.last).not_to_have_class("msg-sending")
    expect(chat.answers).to_have_count(answers)

    released = api.post(f"/v1/admin/handoffs/{session_id}/release")
    assert released.status_code == 200, released.text
    expect(banner).to_be_hidden()
    answer = chat.ask("are you back?")
    expect(answer.locator(".msg-body")).to_have_text("echo: are you back?")
    assert chat.page.evaluate("window.__sameDocument") is True
    roles = [m["role"] for m in api.get(f"/v1/history/{session_id}").json()["data"]]
    assert roles == ["user", "assistant", "agent", "user", "user", "assistant"]
