"""Citations in a real browser: an answer from a knowledge base lists its sources under it (the
document; the passage on a click), live from the stream and again from history after a reload;
a passage's markup is shown as text, never run."""

from __future__ import annotations

import secrets
import time

import httpx
from playwright.sync_api import expect

from tests.web.conftest import Chat

PASSAGE = (
    "Kettle care.\n\nThe Zephyr 9 kettle carries a warranty of three years. "
    "<img src=x onerror=\"document.title='pwned'\"> Keep the receipt."
)


def grounded_assistant(api: httpx.Client) -> str:
    """A knowledge base with one ready document, and an assistant (named "Manuals") on it."""
    kb_id = f"kb-{secrets.token_hex(3)}"
    created = api.post("/v1/admin/knowledge-bases", json={"id": kb_id, "name": "Manuals"})
    assert created.status_code == 201, created.text
    files = {"file": ("kettle.md", PASSAGE.encode(), "text/markdown")}
    document = api.post(f"/v1/admin/knowledge-bases/{kb_id}/documents", files=files).json()
    deadline = time.monotonic() + 90
    while document["status"] == "processing":
        assert time.monotonic() < deadline, document
        time.sleep(0.1)
        document = api.get(f"/v1/admin/knowledge-bases/{kb_id}/documents/{document['id']}").json()
    assert document["status"] == "ready", document
    assistant_id = f"manuals-{secrets.token_hex(3)}"
    spec = {
        "id": assistant_id, "name": f"Manuals {assistant_id[-6:]}", "provider": "double",
        "model": "double-manuals", "system_prompt": "Answer from the manuals.",
        "max_context_tokens": 4000, "max_answer_tokens": 100, "knowledge_bases": [kb_id],
    }  # fmt: skip
    response = api.post("/v1/admin/assistants", json=spec)
    assert response.status_code == 201, response.text
    return str(spec["name"])


def test_an_answer_shows_its_sources_live_and_from_history(chat: Chat, api: httpx.Client) -> None:
    name = grounded_assistant(api)
    chat.open()
    chat.tab(name).click()
    expect(chat.tab(name)).to_have_attribute("aria-selected", "true")
    answer = chat.ask("How long is the warranty of the Zephyr 9 kettle?")

    for _ in ("live", "after a reload"):
        sources = answer.locator(".msg-citations")
        expect(sources).to_be_visible()
        expect(sources.locator(".citation summary")).to_have_text(["[1] kettle.md"])
        passage = sources.locator(".citation-text")
        expect(passage).to_be_hidden()
        sources.locator(".citation summary").click()
        expect(passage).to_be_visible()
        expect(passage).to_contain_text("warranty of three years")
        # The document's markup is text on the page, not an element.
        expect(passage).to_contain_text("<img src=x")
        expect(passage.locator("img")).to_have_count(0)
        assert chat.page.title() != "pwned"
        chat.page.reload()
        chat.wait_ready()
        answer = chat.last_answer()


def test_an_answer_without_knowledge_bases_shows_no_sources(chat: Chat) -> None:
    chat.open()
    answer = chat.ask("no sources here")
    expect(answer.locator(".msg-citations")).to_have_count(0)
