"""An answer picked up again in a real browser: after a reload, and after its connection drops
mid-stream (a relay that really closes it), through the events endpoint; never a word twice, not
even for a moment, and Stop still works while it is picked up."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Request, expect

from tests.web.conftest import Chat, WebGateway
from tests.web.cutproxy import CuttingProxy, cutting_proxy

RETRIES = 4  # resume.js RETRY_DELAYS_MS: 0.5 s, 1 s, 2 s, 4 s
# Every text the newest answer's bubble shows, from the first paint of each load of the page.
RECORD_TEXTS = """
window.__texts = [];
new MutationObserver(() => {
  const bodies = document.querySelectorAll("#messages > li.msg-assistant .msg-body");
  if (!bodies.length) return;
  const text = bodies[bodies.length - 1].textContent.trim();
  if (window.__texts[window.__texts.length - 1] !== text) window.__texts.push(text);
}).observe(document, { subtree: true, childList: true, characterData: true });
"""
EVENTS = re.compile(r".*/v1/sessions/[^/]+/messages/[^/]+/events(\?.*)?$")


def words(count: int) -> str:
    return " ".join(f"w{i}" for i in range(count))


def stored_answer(api: httpx.Client, session_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/history/{session_id}", params={"limit": 10})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()["data"][-1]
    assert answer["role"] == "assistant"
    return answer


def assert_prefixes(texts: list[str], final: str) -> None:
    """Each text shown is the start of the final one, word for word: no word ever twice."""
    whole = final.split()
    for text in texts:
        shown = text.split()
        assert shown == whole[: len(shown)], f"shown {text!r}, the answer is {final!r}"


def recorded(page: Page) -> list[str]:
    texts: list[str] = page.evaluate("window.__texts")
    return texts


def sample_while_streaming(answer: Any, *, limit: float = 20) -> list[str]:
    """The bubble's text every 50 ms while the answer is being written."""
    samples: list[str] = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        status, text = answer.evaluate(
            "li => [li.dataset.status, li.querySelector('.msg-body').textContent.trim()]"
        )
        if status != "streaming":
            break
        samples.append(text)
        time.sleep(0.05)
    return samples


def requests_to(page: Page, pattern: re.Pattern[str] = EVENTS) -> list[Request]:
    """The page's requests to URLs matching `pattern` from now on (the events endpoint's)."""
    seen: list[Request] = []

    def note(request: Request) -> None:
        if pattern.match(request.url):
            seen.append(request)

    page.on("request", note)
    return seen


@pytest.fixture
def relay(web_gateway: WebGateway, api: httpx.Client) -> Iterator[CuttingProxy]:
    with cutting_proxy(web_gateway.url) as proxy:
        yield proxy


def test_a_reload_mid_answer_goes_on_with_no_word_twice(chat: Chat, api: httpx.Client) -> None:
    chat.page.add_init_script(RECORD_TEXTS)
    resumed = requests_to(chat.page)
    history_reads = requests_to(chat.page, re.compile(r".*/v1/history/.*"))
    chat.open()
    chat.send("[[slow 50 0.1]] a long story")
    expect(chat.last_answer().locator(".msg-body")).to_contain_text("w4")

    chat.page.reload()
    chat.wait_ready()
    answer = chat.last_answer()
    body = answer.locator(".msg-body")
    history_reads.clear()
    # Still being written, and followed here: it grows, and Stop is offered for it.
    expect(answer).to_have_attribute("data-status", "streaming")
    expect(chat.page.get_by_role("button", name="Stop")).to_be_visible()
    chat.screenshot("resume-after-reload-streaming.png")
    samples = sample_while_streaming(answer)
    expect(answer).to_have_attribute("data-status", "complete", timeout=15_000)
    final = words(50)
    expect(body).to_have_text(final)
    expect(chat.page.get_by_role("button", name="Send")).to_be_visible()
    chat.screenshot("resume-after-reload.png", full_page=True)

    texts = recorded(chat.page)
    assert_prefixes(samples + texts, final)
    # It was seen growing in the reloaded page (not only read whole at its end).
    assert len([s for s in set(samples) if 0 < len(s.split()) < 50]) >= 3, samples
    assert texts[-1] == final
    # From the first event (no Last-Event-ID): the replay rebuilt the text, no history polling.
    assert len(resumed) == 1
    assert resumed[0].header_value("last-event-id") is None
    assert history_reads == []
    stored = stored_answer(api, chat.session_id())
    assert stored["status"] == "complete"
    assert str(stored["content"]).split() == final.split()
    assert answer.get_attribute("data-id") == stored["id"]
    expect(chat.notice).to_be_hidden()


def test_a_dropped_connection_is_resumed_after_the_last_event(
    page: Page, relay: CuttingProxy, api: httpx.Client
) -> None:
    chat = Chat(page, relay.url)
    page.add_init_script(RECORD_TEXTS)
    resumed = requests_to(page)
    chat.open()
    relay.cut_next_stream(after_event_id=6)  # message_start, then w0 to w4
    chat.send("[[slow 30 0.1]] tell me a story")
    answer = chat.last_answer()
    expect(answer).to_have_attribute("data-status", "complete", timeout=15_000)
    final = words(30)
    expect(answer.locator(".msg-body")).to_have_text(final)
    chat.screenshot("resume-after-dropped-connection.png", full_page=True)

    assert relay.cuts == 1, "the relay never cut the stream"
    assert [r.header_value("last-event-id") for r in resumed] == ["6"]
    texts = recorded(page)
    assert_prefixes(texts, final)
    # What came before the cut stayed on screen while the page reconnected.
    assert words(5) in texts, texts
    stored = stored_answer(api, chat.session_id())
    assert stored["status"] == "complete"
    assert str(stored["content"]).split() == final.split()
    expect(chat.notice).to_be_hidden()
    expect(chat.page.get_by_role("button", name="Send")).to_be_visible()


def test_stop_ends_an_answer_picked_up_after_a_reload(chat: Chat, api: httpx.Client) -> None:
    chat.open()
    chat.send("[[slow 100 0.1]] a very long story")
    expect(chat.last_answer().locator(".msg-body")).to_contain_text("w3")
    chat.page.reload()
    chat.wait_ready()
    answer = chat.last_answer()
    expect(answer.locator(".msg-body")).to_contain_text("w12")  # growing here
    chat.page.get_by_role("button", name="Stop").click()

    expect(answer).to_have_attribute("data-status", "interrupted")
    expect(answer.locator(".badge")).to_have_text("Stopped")
    expect(chat.page.get_by_role("button", name="Send")).to_be_visible()
    shown = answer.locator(".msg-body").inner_text()
    assert "w12" in shown and "w99" not in shown
    assert_prefixes([shown], words(100))
    stored = stored_answer(api, chat.session_id())
    assert stored["status"] == "interrupted"
    assert str(stored["content"]).split() == shown.split()
    chat.ask("and now?")
    expect(chat.last_answer().locator(".msg-body")).to_have_text("echo: and now?")


def test_stop_works_while_a_dropped_stream_is_being_retried(
    page: Page, relay: CuttingProxy
) -> None:
    chat = Chat(page, relay.url)
    resumed = requests_to(page)
    chat.open()
    relay.cut_next_stream(after_event_id=4, then_down=True)
    chat.send("[[slow 60 0.1]] a story")
    answer = chat.last_answer()
    expect(answer.locator(".msg-body")).to_have_text("w0 w1 w2")
    # Between tries (the relay is down): Stop ends it at once, and no try follows.
    deadline = time.monotonic() + 5
    while not resumed and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert resumed, "the page did not try to resume"
    started = time.monotonic()
    chat.page.get_by_role("button", name="Stop").click()
    expect(answer).to_have_attribute("data-status", "interrupted")
    assert time.monotonic() - started < 2
    expect(answer.locator(".badge")).to_have_text("Stopped")
    expect(answer.locator(".msg-body")).to_have_text("w0 w1 w2")
    tries = len(resumed)
    page.wait_for_timeout(3000)
    assert len(resumed) == tries < RETRIES
    expect(chat.page.get_by_role("button", name="Send")).to_be_visible()


def test_an_answer_that_cannot_be_resumed_is_marked_cut_off(
    page: Page, relay: CuttingProxy
) -> None:
    chat = Chat(page, relay.url)
    resumed = requests_to(page)
    chat.open()
    relay.cut_next_stream(after_event_id=4, then_down=True)
    chat.send("[[slow 60 0.1]] a story")
    answer = chat.last_answer()
    # Four tries over 7.5 s, then the answer is kept as it is, marked cut off.
    expect(answer).to_have_attribute("data-status", "interrupted", timeout=15_000)
    expect(answer.locator(".badge")).to_have_text("Interrupted")
    expect(answer.locator(".msg-note")).to_contain_text("The connection dropped")
    expect(answer.locator(".msg-body")).to_have_text("w0 w1 w2")
    expect(chat.notice).to_be_visible()  # chatgate can't be reached, or the stream dropped
    assert len(resumed) == RETRIES
    assert {r.header_value("last-event-id") for r in resumed} == {"4"}
    chat.screenshot("resume-gave-up.png", full_page=True)


def test_without_the_events_endpoint_the_page_polls_history(chat: Chat, api: httpx.Client) -> None:
    refused: list[str] = []

    def gone(route: Any) -> None:
        refused.append(route.request.url)
        route.fulfill(
            status=404,
            json={"error": {"code": "not_found", "message": "Not Found", "trace_id": "t-404"}},
        )

    chat.page.route(EVENTS, gone)
    chat.open()
    chat.send("[[slow 30 0.1]] a story")
    expect(chat.last_answer().locator(".msg-body")).to_contain_text("w2")
    chat.page.reload()
    chat.wait_ready()
    answer = chat.last_answer()
    expect(answer).to_have_attribute("data-status", "complete", timeout=15_000)
    expect(answer.locator(".msg-body")).to_have_text(words(30))
    assert len(refused) == 1
    expect(chat.notice).to_be_hidden()


def sse(event_id: int, name: str, data: dict[str, Any]) -> str:
    return f"id: {event_id}\nevent: {name}\ndata: {json.dumps(data)}\n\n"


def test_a_drained_answer_read_again_with_nothing_after_its_end_is_final(
    chat: Chat, api: httpx.Client
) -> None:
    """As a process that shares its log (Redis) answers a client that has the end already: an
    empty stream. The drained end is then the answer's last state, said without more tries."""
    chat.open()
    session_id = chat.session_id()
    answer_id, question_id = str(uuid.uuid4()), str(uuid.uuid4())
    message = {
        "id": answer_id, "session_id": session_id, "role": "assistant", "content": "w0 w1 w2 ",
        "status": "interrupted", "created_at": "2026-01-01T00:00:00Z",
        "error": {"code": "shutdown", "message": "the answer ended early: shutdown"},
    }  # fmt: skip
    drained = {
        "error": {"code": "server_shutting_down", "message": "shutting down", "trace_id": "t-1"},
        "message": message,
    }
    start = {"session_id": session_id, "user_message_id": question_id, "message_id": answer_id}
    body = sse(1, "message_start", start) + "".join(
        sse(2 + i, "delta", {"text": f"w{i} "}) for i in range(3)
    )
    chat.page.route(
        re.compile(r".*/v1/sessions/[^/]+/messages$"),
        lambda route: route.fulfill(
            content_type="text/event-stream", body=body + sse(5, "error", drained)
        ),
    )
    chat.page.route(EVENTS, lambda route: route.fulfill(content_type="text/event-stream", body=""))
    resumed = requests_to(chat.page)
    chat.send("a question")
    answer = chat.last_answer()
    expect(answer).to_have_attribute("data-status", "interrupted", timeout=3000)
    expect(answer.locator(".msg-body")).to_have_text("w0 w1 w2")
    expect(answer.locator(".msg-note")).to_contain_text("shutting down")
    expect(chat.notice).to_contain_text("chatgate restarted before the answer finished")
    assert [r.header_value("last-event-id") for r in resumed] == ["5"]
