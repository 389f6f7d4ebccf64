"""The issue's "done when", in a browser: an operator changes an assistant's prompt, tries it
(the live and the draft answers side by side), saves it, sees a chat answer follow the new
prompt, compares the versions and rolls the change back. The engine double answers
`[[system]]` with the system prompt it was sent, so an answer shows which prompt it followed."""

from __future__ import annotations

import secrets

import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import make_token
from tests.web.conftest import Chat, WebGateway, open_page
from tests.web.console import ADMIN_ID, Console, admin_client

FIRST = "You are the first prompt."
SECOND = "You are the second prompt, kinder."


def test_an_operator_tunes_a_prompt_tries_saves_and_rolls_it_back(
    browser: Browser, request: pytest.FixtureRequest, jwt_gateway: WebGateway
) -> None:
    assistant_id = f"tuned-{secrets.token_hex(3)}"
    name = f"Tuned {assistant_id[-6:]}"
    spec = {
        "id": assistant_id, "name": name, "provider": "double", "model": "double-tuned",
        "system_prompt": FIRST, "max_context_tokens": 4000, "max_answer_tokens": 100,
    }  # fmt: skip
    with admin_client(jwt_gateway) as admin:
        assert admin.post("/v1/admin/assistants", json=spec).status_code == 201
    with open_page(browser, request) as page:
        console = Console(page, jwt_gateway.url).sign_in_as(make_token(ADMIN_ID, admin=True))
        view = console.view
        console.open("assistants")
        view.get_by_role("link", name=name, exact=True).click()
        console.wait_view("assistants")
        prompt = view.get_by_label("System prompt")
        expect(prompt).to_have_value(FIRST)
        prompt.fill(SECOND)
        expect(view.get_by_text("Not saved yet: system_prompt.")).to_be_visible()

        # Tried before saving: the live assistant and the draft answer side by side.
        view.get_by_label("Question to try").fill("[[system]] who are you?")
        view.get_by_role("button", name="Try live and draft").click()
        live = view.get_by_role("article", name="Live (v1)")
        draft = view.get_by_role("article", name="Draft (unsaved)")
        expect(live).to_contain_text(FIRST)
        expect(draft).to_contain_text(SECOND)
        expect(live).not_to_contain_text(SECOND)
        left, right = live.bounding_box(), draft.bounding_box()
        assert left and right and left["y"] == right["y"] and left["x"] < right["x"]
        console.screenshot("admin-try-desktop.png")
        with admin_client(jwt_gateway) as admin:
            stored = admin.get(f"/v1/admin/assistants/{assistant_id}").json()
        assert (stored["system_prompt"], stored["version"]) == (FIRST, 1)  # nothing saved yet

        view.get_by_role("button", name="Save").click()
        expect(view.get_by_text("Saved as version 2.")).to_be_visible()
        expect(view.get_by_label("System prompt")).to_have_value(SECOND)

        # A chat answer follows the saved prompt (the chat page, same browser, same sign-in).
        chat = Chat(page, jwt_gateway.url).open()
        chat.tab(name).click()
        chat.wait_ready()
        expect(chat.ask("[[system]] and now?").locator(".msg-body")).to_contain_text(SECOND)

        # The versions, their differences, and the roll back.
        page.goto(f"{jwt_gateway.url}/admin#assistants/{assistant_id}")
        console.wait_view("assistants")
        view.get_by_label("Compare with the current version (v2)").select_option("1")
        view.get_by_role("button", name="Show the differences").click()
        diff = view.get_by_label("Differences")
        expect(diff.locator("del")).to_contain_text(f'- "system_prompt": "{FIRST}"')
        expect(diff.locator("ins")).to_contain_text(f'+ "system_prompt": "{SECOND}"')
        console.screenshot("admin-versions-desktop.png")
        view.get_by_role("button", name="Roll back to v1").click()
        expect(page.get_by_role("dialog")).to_contain_text("Roll back to v1?")
        page.get_by_role("dialog").get_by_role("button", name="Roll back").click()
        expect(view.get_by_text("Rolled back to v1: now version 3.")).to_be_visible()
        expect(view.get_by_label("System prompt")).to_have_value(FIRST)
        expect(view.get_by_role("cell", name="v3 (current)")).to_be_visible()

        chat.open()
        chat.tab(name).click()
        chat.wait_ready()
        expect(
            chat.ask("[[system]] and after the roll back?").locator(".msg-body")
        ).to_contain_text(FIRST)
    with admin_client(jwt_gateway) as admin:
        versions = admin.get(f"/v1/admin/assistants/{assistant_id}/versions").json()["data"]
        events = admin.get("/v1/admin/audit", params={"action": "assistant.rolled_back"}).json()
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert versions[0]["config"]["system_prompt"] == FIRST
    assert any(e["target_id"] == assistant_id for e in events["data"])
