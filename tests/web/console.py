"""The operators' console (/admin) as an operator uses it, for the test_admin_* modules: opened
signed in with a token, a view chosen from its menu, and what the screen shows."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Locator, Page, expect

from tests.conftest import make_token
from tests.web.conftest import ARTIFACTS, WebGateway

VIEWS = {
    "assistants": "Assistants",
    "knowledge": "Knowledge bases",
    "keys": "API keys",
    "usage": "Usage & cost",
    "audit": "Audit log",
    "handoffs": "Hand-offs",
}
ADMIN_ID = "ops-admin"


def admin_client(gateway: WebGateway) -> httpx.Client:
    token = make_token(ADMIN_ID, admin=True)
    return httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def user_client(gateway: WebGateway, user_id: str) -> httpx.Client:
    token = make_token(user_id)
    return httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def ask(client: httpx.Client, assistant_id: str, text: str, session_id: str | None = None) -> Any:
    """A whole chat turn (blocking): the session id and the send's result."""
    if session_id is None:
        created = client.post("/v1/sessions", json={"assistant_id": assistant_id})
        assert created.status_code == 201, created.text
        session_id = created.json()["id"]
    sent = client.post(f"/v1/sessions/{session_id}/messages", json={"content": text})
    assert sent.status_code in (200, 201), sent.text
    return {"session_id": session_id, **sent.json()}


def knowledge_base(admin: httpx.Client, text: str, name: str = "Manuals") -> str:
    """A knowledge base with one ready document."""
    kb_id = f"kb-{secrets.token_hex(3)}"
    created = admin.post("/v1/admin/knowledge-bases", json={"id": kb_id, "name": name})
    assert created.status_code == 201, created.text
    files = {"file": ("kettle.md", text.encode(), "text/markdown")}
    document = admin.post(f"/v1/admin/knowledge-bases/{kb_id}/documents", files=files).json()
    wait_ready(admin, kb_id, document)
    return kb_id


def wait_ready(admin: httpx.Client, kb_id: str, document: dict[str, Any]) -> None:
    deadline = time.monotonic() + 90
    while document["status"] == "processing":
        assert time.monotonic() < deadline, document
        time.sleep(0.1)
        path = f"/v1/admin/knowledge-bases/{kb_id}/documents/{document['id']}"
        document = admin.get(path).json()
    assert document["status"] == "ready", document


PASSAGE = "Kettle care.\n\nThe Zephyr 9 kettle carries a warranty of three years."


@dataclass
class Seeded:
    user_id: str
    key_name: str
    kb_id: str
    desk_id: str
    customer_id: str
    handoff_session: str


def wait_for_usage(admin: httpx.Client, user_id: str) -> None:
    """The ledger writes in batches, off the request path: wait until the user's turns are in."""
    deadline = time.monotonic() + 20
    while True:
        rows = admin.get("/v1/admin/usage", params={"group_by": "user"}).json()["data"]
        if any(r["group"] == user_id for r in rows):
            return
        assert time.monotonic() < deadline, rows
        time.sleep(0.2)


def seed(jwt_gateway: WebGateway) -> Seeded:
    """What the console shows: turns by a user and by a key (priced), a knowledge base, a
    budget, and a conversation waiting for a person."""
    tag = secrets.token_hex(3)
    user_id = f"ops-user-{tag}"
    with admin_client(jwt_gateway) as admin, user_client(jwt_gateway, user_id) as user:
        price = {"input_per_million": 1000.0, "output_per_million": 2000.0}
        assert admin.put("/v1/admin/prices/double-echo", json=price).status_code == 200
        ask(user, "echo", "hello from the operators' test")
        key_name = f"ops-key-{tag}"
        created = admin.post(
            "/v1/admin/keys", json={"name": key_name, "kind": "user", "user_id": f"keyed-{tag}"}
        )
        assert created.status_code == 201, created.text
        with httpx.Client(
            base_url=jwt_gateway.url,
            headers={"Authorization": f"Bearer {created.json()['secret']}"},
            timeout=30,
        ) as keyed:
            ask(keyed, "echo", "hello with a key")
        kb_id = knowledge_base(admin, PASSAGE)
        budget = admin.put(
            f"/v1/admin/budgets/user/{user_id}", json={"period": "month", "max_tokens": 100_000}
        )
        assert budget.status_code == 200, budget.text
        desk_id = f"desk-{tag}"
        spec = {
            "id": desk_id, "name": f"Desk {tag}", "provider": "double", "model": "double-desk",
            "max_context_tokens": 4000, "max_answer_tokens": 100,
            "handoff": {"on_request": True, "message": "A person will answer soon."},
        }  # fmt: skip
        assert admin.post("/v1/admin/assistants", json=spec).status_code == 201
        customer_id = f"顾客-{tag}"  # read back by the console in a header: UTF-8
        with user_client(jwt_gateway, customer_id) as customer:
            turn = ask(customer, desk_id, "I want to talk to a human please")
        assert turn["handoff"] is not None, turn
        wait_for_usage(admin, user_id)
        return Seeded(user_id, key_name, kb_id, desk_id, customer_id, turn["session_id"])


class Console:
    """The console in one browser page."""

    def __init__(self, page: Page, url: str) -> None:
        self.page = page
        self.url = url
        self.view = page.locator("#view")

    def sign_in_as(self, token: str) -> Console:
        # Before any of the page's scripts run, as if the chat page had signed in already.
        self.page.add_init_script(f"localStorage.setItem('chatgate.token', {json.dumps(token)})")
        return self

    def open(self, view: str = "assistants") -> Console:
        self.page.goto(f"{self.url}/admin#{view}")
        self.wait_view(view)
        return self

    def wait_view(self, view: str) -> None:
        expect(self.page.locator("#view")).to_have_attribute("data-view", view)
        expect(self.heading()).to_be_visible()
        expect(self.view.locator("[aria-busy=true]")).to_have_count(0)

    def heading(self) -> Locator:
        return self.view.get_by_role("heading", level=1)

    def go(self, view: str) -> None:
        """Through the menu, opening it first on a narrow screen."""
        toggle = self.page.get_by_role("button", name="Show the menu")
        if toggle.is_visible():
            toggle.click()
        self.page.get_by_role("navigation", name="Console").get_by_role(
            "link", name=VIEWS[view], exact=True
        ).click()
        self.wait_view(view)
        expect(self.heading()).to_have_text(VIEWS[view])

    def fits_the_width(self) -> None:
        widths = self.page.evaluate(
            "[document.documentElement.scrollWidth, document.body.scrollWidth, innerWidth]"
        )
        assert widths[0] <= widths[2] and widths[1] <= widths[2], widths

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), full_page=True)
        return path
