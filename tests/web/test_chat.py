"""The conversation in a real browser: streaming, Stop, reload, assistants and history paging."""

from __future__ import annotations

import re
from datetime import datetime

import httpx
from playwright.sync_api import expect

from tests.web.conftest import Chat, WebGateway


def history(api: httpx.Client, session_id: str) -> list[dict[str, object]]:
    response = api.get(f"/v1/history/{session_id}", params={"limit": 200})
    assert response.status_code == 200, response.text
    data: list[dict[str, object]] = response.json()["data"]
    return data


def test_the_answer_streams_in_with_role_and_time(chat: Chat, api: httpx.Client) -> None:
    chat.open()
    send = chat.page.get_by_role("button", name="Send")
    stop = chat.page.get_by_role("button", name="Stop")
    chat.send("[[slow 8 0.25]] count for me")

    answer = chat.last_answer()
    expect(answer).to_have_attribute("data-status", "streaming")
    expect(answer.locator(".msg-body")).to_have_attribute("aria-busy", "true")
    expect(answer.locator(".msg-body")).to_have_attribute("aria-live", "polite")
    expect(stop).to_be_visible()
    expect(send).to_be_hidden()
    # The words arrive one by one: part of the answer shows before the rest exists.
    expect(answer.locator(".msg-body")).to_contain_text("w2")
    assert "w7" not in answer.locator(".msg-body").inner_text()
    expect(answer.get_by_text("Writing…")).to_be_visible()

    expect(answer).to_have_attribute("data-status", "complete")
    expect(answer.locator(".msg-body")).to_have_text("w0 w1 w2 w3 w4 w5 w6 w7")
    expect(answer.locator(".badge")).to_have_count(0)
    # The same live region ends not busy, so its whole text is announced once.
    expect(answer.locator(".msg-body")).to_have_attribute("aria-busy", "false")
    expect(answer.locator(".msg-body")).to_have_attribute("aria-live", "polite")
    expect(send).to_be_visible()
    expect(stop).to_be_hidden()

    question = chat.messages.first
    expect(question.locator(".msg-role")).to_have_text("You")
    expect(answer.locator(".msg-role")).to_have_text("Echo")
    for message in (question, answer):
        stamp = message.locator("time").get_attribute("datetime")
        assert stamp and datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        expect(message.locator("time")).to_have_text(re.compile(r"^\d{1,2}:\d{2}( [AP]M)?$"))

    stored = history(api, chat.session_id())
    assert [m["status"] for m in stored] == ["complete", "complete"]
    assert stored[1]["content"] == "w0 w1 w2 w3 w4 w5 w6 w7 "
    assert answer.get_attribute("data-id") == stored[1]["id"]
    expect(chat.page.locator("#session-list .session-title")).to_have_text(
        ["[[slow 8 0.25]] count for me"]
    )


def test_stop_ends_the_answer_and_keeps_its_text(chat: Chat, api: httpx.Client) -> None:
    chat.open()
    chat.send("[[slow 80 0.1]] a long story")
    answer = chat.last_answer()
    expect(answer.locator(".msg-body")).to_contain_text("w3")
    chat.page.get_by_role("button", name="Stop").click()

    expect(answer).to_have_attribute("data-status", "interrupted")
    expect(answer.locator(".badge")).to_have_text("Stopped")
    expect(answer.locator(".msg-note")).to_contain_text("You stopped this answer")
    expect(chat.page.get_by_role("button", name="Send")).to_be_visible()
    shown = answer.locator(".msg-body").inner_text()
    assert "w3" in shown and "w79" not in shown

    stored = history(api, chat.session_id())[-1]
    assert stored["status"] == "interrupted"
    assert str(stored["content"]).split() == shown.split()
    # The conversation goes on after a stop.
    chat.ask("and now?")
    expect(chat.last_answer().locator(".msg-body")).to_have_text("echo: and now?")


def test_escape_stops_the_answer_from_the_message_box(chat: Chat) -> None:
    chat.open()
    chat.send("[[slow 80 0.1]] go on")
    expect(chat.last_answer().locator(".msg-body")).to_contain_text("w2")
    chat.input.press("Escape")
    expect(chat.last_answer()).to_have_attribute("data-status", "interrupted")


def test_a_reload_comes_back_to_the_same_conversation(chat: Chat, api: httpx.Client) -> None:
    chat.open()
    chat.ask("first question")
    chat.ask("second question")
    first = chat.session_id()

    chat.page.get_by_role("button", name="New").click()
    expect(chat.page.locator("#chat-title")).to_have_text("New conversation")
    chat.ask("another topic")
    assert chat.session_id() != first

    # Open the older conversation, then reload: the page returns to it, not to the latest.
    chat.page.locator("#session-list .session-open", has_text="first question").click()
    expect(chat.messages).to_have_count(4)
    assert chat.session_id() == first
    chat.page.reload()
    chat.wait_ready()
    assert chat.session_id() == first
    expect(chat.messages.locator(".msg-body")).to_have_text(
        ["first question", "echo: first question", "second question", "echo: second question"]
    )
    expect(chat.page.locator("#chat-title")).to_have_text("first question")
    expect(chat.tab("Echo")).to_have_attribute("aria-selected", "true")

    # Deleted elsewhere meanwhile: the page falls back to the assistant's latest conversation.
    assert api.delete(f"/v1/sessions/{first}").status_code == 204
    chat.page.reload()
    chat.wait_ready()
    expect(chat.messages.locator(".msg-body")).to_have_text(
        ["another topic", "echo: another topic"]
    )
    expect(chat.notice).to_be_hidden()


def test_switching_assistant_brings_back_its_own_conversation(
    chat: Chat, web_gateway: WebGateway
) -> None:
    chat.open()
    expect(chat.tab("Echo")).to_have_attribute("aria-selected", "true")
    chat.ask("apples are red")
    echo_session = chat.session_id()

    chat.tab("Support").click()
    expect(chat.tab("Support")).to_have_attribute("aria-selected", "true")
    expect(chat.tab("Echo")).to_have_attribute("aria-selected", "false")
    expect(chat.page.get_by_text("Start a conversation with Support")).to_be_visible()
    expect(chat.messages).to_have_count(0)
    chat.ask("which colour were they?")
    support_session = chat.session_id()
    assert support_session != echo_session
    sent = [r for r in web_gateway.double.api.requests if r["model"] == "double-support"][-1]
    assert "apples" not in str(sent["messages"]), "Support must not see Echo's conversation"

    chat.tab("Echo").click()
    expect(chat.messages.locator(".msg-body")).to_have_text(
        ["apples are red", "echo: apples are red"]
    )
    assert chat.session_id() == echo_session
    expect(chat.messages.first.locator(".msg-role")).to_have_text("You")
    expect(chat.last_answer().locator(".msg-role")).to_have_text("Echo")

    # The tabs follow the arrow keys too.
    chat.tab("Echo").focus()
    chat.page.keyboard.press("ArrowRight")
    expect(chat.tab("Support")).to_be_focused()
    expect(chat.messages.locator(".msg-body")).to_have_text(
        ["which colour were they?", "echo: which colour were they?"]
    )
    expect(chat.last_answer().locator(".msg-role")).to_have_text("Support")
    assert chat.session_id() == support_session


def test_an_answer_keeps_streaming_while_another_assistant_is_open(chat: Chat) -> None:
    chat.open()
    chat.send("[[slow 60 0.1]] keep going")
    expect(chat.last_answer().locator(".msg-body")).to_contain_text("w1")
    chat.tab("Support").click()
    expect(chat.messages).to_have_count(0)
    expect(chat.page.get_by_role("button", name="Send")).to_be_visible()
    chat.ask("meanwhile, a question")

    chat.tab("Echo").click()
    answer = chat.last_answer()
    expect(chat.messages).to_have_count(2)
    expect(answer).to_have_attribute("data-status", "streaming")
    expect(chat.page.get_by_role("button", name="Stop")).to_be_visible()
    expect(answer).to_have_attribute("data-status", "complete", timeout=15_000)
    expect(answer.locator(".msg-body")).to_have_text(" ".join(f"w{i}" for i in range(60)))
    expect(chat.page.get_by_role("button", name="Send")).to_be_visible()


def test_older_messages_load_a_page_at_a_time_when_scrolling_up(
    chat: Chat, api: httpx.Client
) -> None:
    session = api.post("/v1/sessions", json={"assistant_id": "echo", "title": "Long one"}).json()
    for n in range(75):
        role = "user" if n % 2 == 0 else "assistant"
        response = api.post(
            "/v1/history",
            json={"session_id": session["id"], "role": role, "content": f"message {n:03d}"},
        )
        assert response.status_code == 201, response.text

    chat.open()
    bodies = chat.messages.locator(".msg-body")
    expect(chat.messages).to_have_count(30)
    expect(bodies.first).to_have_text("message 045")
    expect(bodies.last).to_have_text("message 074")
    expect(chat.page.get_by_role("button", name="Load older messages")).to_be_visible()
    expect(bodies.last).to_be_in_viewport()

    scroller = chat.page.locator("#scroller")
    scroller.hover()
    chat.page.mouse.wheel(0, -50_000)
    expect(chat.messages).to_have_count(60)
    expect(bodies.first).to_have_text("message 015")
    # The reader stays where they were: the page grew above them.
    expect(chat.messages.nth(30)).to_be_in_viewport()
    assert scroller.evaluate("el => el.scrollTop") > 200

    chat.page.mouse.wheel(0, -50_000)
    expect(chat.messages).to_have_count(75)
    expect(bodies.first).to_have_text("message 000")
    expect(chat.page.get_by_text("Start of the conversation")).to_be_visible()
    expect(chat.page.get_by_role("button", name="Load older messages")).to_have_count(0)


def test_conversations_can_be_made_renamed_and_deleted(chat: Chat, api: httpx.Client) -> None:
    chat.open()
    items = chat.page.locator("#session-list .session")
    titles = chat.page.locator("#session-list .session-title")
    chat.ask("about shipping")
    expect(titles).to_have_text(["about shipping"])

    chat.page.get_by_role("button", name="New").click()
    expect(titles).to_have_text(["New conversation", "about shipping"])
    chat.ask("about returns")
    expect(titles).to_have_text(["about returns", "about shipping"])
    expect(items.first.get_by_role("button").first).to_have_attribute("aria-current", "true")

    chat.page.get_by_role("button", name="Rename “about shipping”").click()
    dialog = chat.page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    field = dialog.get_by_label("Title")
    expect(field).to_have_value("about shipping")
    field.fill("Shipping questions")
    field.press("Enter")
    expect(dialog).to_be_hidden()
    expect(titles).to_have_text(["about returns", "Shipping questions"])
    sessions = api.get("/v1/sessions", params={"assistant_id": "echo"}).json()["data"]
    assert {s["title"] for s in sessions} == {"about returns", "Shipping questions"}
    renamed = next(s for s in sessions if s["title"] == "Shipping questions")

    # Deleting asks first; Cancel keeps the conversation.
    chat.page.get_by_role("button", name="Delete “Shipping questions”").click()
    expect(dialog).to_contain_text("deleted for good")
    dialog.get_by_role("button", name="Cancel").click()
    expect(titles).to_have_text(["about returns", "Shipping questions"])
    chat.page.get_by_role("button", name="Delete “Shipping questions”").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(titles).to_have_text(["about returns"])
    assert api.get(f"/v1/sessions/{renamed['id']}").status_code == 404

    # Deleting the open conversation moves to what is left (a fresh one when nothing is).
    current = chat.session_id()
    chat.page.get_by_role("button", name="Delete “about returns”").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(titles).to_have_text(["New conversation"])
    expect(chat.messages).to_have_count(0)
    assert chat.session_id() != current
    assert api.get(f"/v1/sessions/{current}").status_code == 404


def _history_304s(api: httpx.Client) -> float:
    metrics = api.get("/metrics").text
    sample = r'chatgate_http_requests_total\{[^}]*route="/v1/history/\{session_id\}"'
    found = re.search(sample + r'[^}]*status="304"[^}]*\} (\S+)', metrics)
    return float(found.group(1)) if found else 0.0


def test_a_conversation_opened_again_is_revalidated_not_read_again(
    chat: Chat, api: httpx.Client
) -> None:
    """The page keeps a history page and asks again with its ETag: a page that has not changed
    comes back as a 304 with no body (docs/api.md, `If-None-Match`), counted by the server."""
    chat.open()
    chat.ask("keep this page")
    sent_tags: list[str | None] = []
    chat.page.on(
        "request",
        lambda request: (
            "/v1/history/" in request.url
            and sent_tags.append(request.all_headers().get("if-none-match"))
        ),
    )
    chat.page.reload()
    chat.wait_ready()
    expect(chat.messages.locator(".msg-body")).to_have_text(
        ["keep this page", "echo: keep this page"]
    )
    before = _history_304s(api)
    chat.page.reload()
    chat.wait_ready()
    expect(chat.messages.locator(".msg-body")).to_have_text(
        ["keep this page", "echo: keep this page"]
    )
    assert sent_tags and sent_tags[-1], sent_tags
    assert _history_304s(api) == before + 1
