"""Failures said in plain words, unfinished answers marked, loading shown, and the sign-in
step when auth is on."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.conftest import make_token
from tests.web.conftest import MAX_CONTENT_CHARS, Chat, WebGateway, open_page

TRACE = re.compile(r"Trace id for support: \S{6,}")


def refuse(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Callable[[Route], None]:
    body = {"error": {"code": code, "message": message, "trace_id": "trace-from-the-test"}}

    def handler(route: Route) -> None:
        route.fulfill(
            status=status,
            content_type="application/json",
            headers=headers or {},
            body=json.dumps(body),
        )

    return handler


def test_an_engine_that_is_down_is_said_in_plain_words(chat: Chat, api: httpx.Client) -> None:
    chat.open()
    chat.send("[[status 503]] are you there?")
    expect(chat.notice).to_contain_text("The AI engine is not answering right now")
    expect(chat.notice).to_contain_text(TRACE)
    answer = chat.last_answer()
    expect(answer).to_have_attribute("data-status", "failed")
    expect(answer.locator(".badge")).to_have_text("Failed")
    expect(answer.locator(".msg-note")).to_contain_text("The AI engine is not answering")
    # The question was kept: it is in the history and stays on screen.
    expect(chat.messages.first.locator(".msg-body")).to_have_text("[[status 503]] are you there?")
    stored = api.get(f"/v1/history/{chat.session_id()}").json()["data"]
    assert [m["status"] for m in stored] == ["complete", "failed"]
    chat.screenshot("web-error.png")

    chat.page.get_by_role("button", name="Dismiss message").click()
    expect(chat.notice).to_be_hidden()
    chat.ask("and now?")


def test_an_answer_cut_off_by_the_engine_is_marked_failed_with_its_text(chat: Chat) -> None:
    chat.open()
    chat.send("[[die-after 3]] tell me")
    answer = chat.last_answer()
    expect(answer).to_have_attribute("data-status", "failed")
    expect(answer.locator(".msg-body")).to_have_text("w0 w1 w2")
    expect(answer.locator(".badge")).to_have_text("Failed")
    expect(chat.notice).to_be_visible()
    expect(chat.notice).to_contain_text(TRACE)


def test_an_answer_left_by_a_reload_shows_as_interrupted(chat: Chat, api: httpx.Client) -> None:
    # By default an answer goes on when its page goes away (tests/web/test_resume.py); an
    # assistant may end it there instead.
    assistant_id = f"quitter-{secrets.token_hex(3)}"
    spec = {
        "id": assistant_id, "name": f"Quitter {assistant_id[-6:]}", "provider": "double",
        "model": "double-quitter", "system_prompt": "", "max_context_tokens": 4000,
        "max_answer_tokens": 100, "stream_on_disconnect": "stop",
    }  # fmt: skip
    created = api.post("/v1/admin/assistants", json=spec)
    assert created.status_code == 201, created.text
    chat.open()
    chat.tab(str(spec["name"])).click()
    expect(chat.page.get_by_text(f"Start a conversation with {spec['name']}")).to_be_visible()
    chat.send("[[slow 200 0.05]] a story")
    expect(chat.last_answer().locator(".msg-body")).to_contain_text("w3")
    chat.page.reload()
    chat.wait_ready()
    answer = chat.last_answer()
    expect(answer).to_have_attribute("data-status", "interrupted")
    expect(answer.locator(".badge")).to_have_text("Interrupted")
    expect(answer.locator(".msg-note")).to_contain_text("The connection closed")
    expect(answer.locator(".msg-body")).to_contain_text("w0 w1 w2 w3")
    assert "w199" not in answer.locator(".msg-body").inner_text()
    assert api.get(f"/v1/history/{chat.session_id()}").json()["data"][-1]["status"] == (
        "interrupted"
    )


def test_canned_and_cached_answers_are_marked(chat: Chat) -> None:
    def mark(route: Route) -> None:
        response = route.fetch()
        page = response.json()
        answers = [m for m in page["data"] if m["role"] == "assistant"]
        answers[0]["fallback"] = True
        answers[1]["cached"] = True
        route.fulfill(response=response, json=page)

    chat.open()
    chat.ask("hello")
    chat.ask("hello again")
    chat.page.route(re.compile(r".*/v1/history/.*"), mark)
    chat.page.reload()
    chat.wait_ready()
    canned, cached = chat.answers.nth(0), chat.answers.nth(1)
    expect(canned.locator(".badge")).to_have_text("Canned answer")
    expect(canned.locator(".msg-note")).to_contain_text("prepared reply")
    expect(canned).to_have_class(re.compile(r"\bmsg-fallback\b"))
    expect(cached.locator(".badge")).to_have_text("Cached")
    expect(cached.locator(".msg-note")).to_have_count(0)


def test_a_message_too_long_is_refused_in_plain_words(chat: Chat) -> None:
    chat.open()
    text = "z" * (MAX_CONTENT_CHARS + 1)
    chat.send(text)
    expect(chat.notice).to_contain_text(
        "Your message is too long — the limit is 2,000 characters. Shorten it and try again."
    )
    expect(chat.notice).to_contain_text(TRACE)
    # Nothing was stored: the message leaves the timeline and its text comes back to the box.
    expect(chat.messages).to_have_count(0)
    expect(chat.input).to_have_value(text)


def test_a_message_beyond_the_assistants_memory_is_refused(chat: Chat) -> None:
    chat.open()
    chat.tab("Tiny").click()
    chat.wait_ready()
    chat.send(" ".join(["word"] * 300))
    expect(chat.notice).to_contain_text("more than the assistant can read at once")
    expect(chat.messages).to_have_count(0)


CASES = [
    (
        429,
        "rate_limited",
        {"Retry-After": "7"},
        "Too many requests — wait 7 seconds and try again.",
    ),
    (503, "engine_busy", {}, "The assistant is busy answering other people."),
    (400, "guard_blocked", {}, "blocked by a safety check"),
    (502, "upstream_unavailable", {}, "The AI engine is not answering right now."),
    (409, "turn_in_progress", {}, "An answer is still being written in this conversation."),
    (500, "internal_error", {}, "Something went wrong on our side."),
]


@pytest.mark.parametrize(("status", "code", "headers", "words"), CASES)
def test_refusals_are_said_in_plain_words(
    chat: Chat, status: int, code: str, headers: dict[str, str], words: str
) -> None:
    chat.open()
    chat.page.route(
        re.compile(r".*/v1/sessions/[^/]+/messages$"),
        refuse(status, code, "refused by the test", headers),
    )
    chat.send("hello")
    expect(chat.notice).to_contain_text(words)
    expect(chat.notice).to_contain_text("Trace id for support: trace-from-the-test")
    expect(chat.messages).to_have_count(0)
    expect(chat.input).to_have_value("hello")


def wait_for_route(page: Page, held: dict[str, Route], name: str) -> Route:
    for _ in range(400):
        if name in held:
            return held.pop(name)
        page.wait_for_timeout(25)
    raise AssertionError(f"the page never asked for {name}")


def test_loading_is_visible(chat: Chat) -> None:
    held: dict[str, Route] = {}
    chat.page.route(re.compile(r".*/v1/assistants$"), lambda r: held.setdefault("boot", r))
    chat.page.route(re.compile(r".*/v1/history/.*"), lambda r: held.setdefault("history", r))
    chat.page.goto(chat.url)
    expect(chat.page.get_by_role("status").get_by_text("Loading chatgate…")).to_be_visible()
    wait_for_route(chat.page, held, "boot").continue_()
    expect(chat.page.get_by_text("Loading the conversation…")).to_be_visible()
    expect(chat.page.locator("#scroller")).to_have_attribute("aria-busy", "true")
    wait_for_route(chat.page, held, "history").continue_()
    chat.wait_ready()
    expect(chat.page.get_by_text("Loading the conversation…")).to_be_hidden()


def test_the_page_says_when_chatgate_cannot_be_reached(chat: Chat) -> None:
    chat.page.route(re.compile(r".*/v1/assistants$"), lambda route: route.abort())
    chat.page.goto(chat.url)
    expect(chat.page.get_by_text("Can't reach chatgate right now.")).to_be_visible()
    chat.page.unroute(re.compile(r".*/v1/assistants$"))
    chat.page.get_by_role("button", name="Try again").click()
    chat.wait_ready()


def sign_in(page: Page, secret: str) -> None:
    page.get_by_label("Access token or API key").fill(secret)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_with_a_token_when_auth_is_on(
    browser: Browser, request: pytest.FixtureRequest, jwt_gateway: WebGateway
) -> None:
    with open_page(browser, request) as page:
        chat = Chat(page, jwt_gateway.url)
        page.goto(jwt_gateway.url)
        expect(page.get_by_role("heading", name="Sign in to chatgate")).to_be_visible()
        expect(page.get_by_role("tablist")).to_be_hidden()
        expect(page.get_by_label("Access token or API key")).to_be_focused()

        sign_in(page, "not-a-real-token")
        expect(page.locator("#signin-error")).to_contain_text("was not accepted")
        chat.screenshot("web-signin.png")
        assert page.evaluate("localStorage.getItem('chatgate.token')") is None

        token = make_token("web-signin-user")
        sign_in(page, token)
        chat.wait_ready()
        expect(chat.tab("Echo")).to_be_visible()
        chat.ask("hello as a signed-in user")
        with httpx.Client(
            base_url=jwt_gateway.url, headers={"Authorization": f"Bearer {token}"}
        ) as owner:
            sessions = owner.get("/v1/sessions").json()["data"]
        assert [s["title"] for s in sessions] == ["hello as a signed-in user"]

        # The sign-in is kept: a reload comes straight back to the conversation.
        page.reload()
        chat.wait_ready()
        expect(chat.messages).to_have_count(2)

        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in to chatgate")).to_be_visible()
        expect(page.locator("#signin-error")).to_have_text("You are signed out.")
        assert page.evaluate("localStorage.getItem('chatgate.token')") is None

        # A token that has expired sends the page back to the sign-in step, saying so.
        page.evaluate(
            "t => localStorage.setItem('chatgate.token', t)",
            make_token("web-signin-user", ttl=-60),
        )
        page.reload()
        expect(page.locator("#signin-error")).to_contain_text("expired")
        sign_in(page, token)
        chat.wait_ready()
        expect(chat.messages.locator(".msg-body")).to_have_text(
            ["hello as a signed-in user", "echo: hello as a signed-in user"]
        )


def test_sign_in_with_an_api_key(
    browser: Browser, request: pytest.FixtureRequest, jwt_gateway: WebGateway
) -> None:
    admin = {"Authorization": f"Bearer {make_token('web-admin', admin=True)}"}
    with httpx.Client(base_url=jwt_gateway.url, headers=admin) as http:
        response = http.post(
            "/v1/admin/keys", json={"name": "web page", "kind": "user", "user_id": "web-key-user"}
        )
    assert response.status_code == 201, response.text
    with open_page(browser, request) as page:
        chat = Chat(page, jwt_gateway.url)
        page.goto(jwt_gateway.url)
        sign_in(page, response.json()["secret"])
        chat.wait_ready()
        chat.ask("hello with a key")
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
