"""What an operator does in the console, checked against the API: a key's secret shown once and
copied, a key revoked; a document uploaded and searched; the usage totals and a budget set; the
audit log filtered and paged; a hand-off answered and handed back."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import make_token
from tests.web.conftest import WebGateway, open_page
from tests.web.console import ADMIN_ID, Console, Seeded, admin_client, ask, seed, user_client


@pytest.fixture(scope="module")
def seeded(jwt_gateway: WebGateway) -> Seeded:
    return seed(jwt_gateway)


@pytest.fixture
def admin(jwt_gateway: WebGateway) -> Iterator[httpx.Client]:
    with admin_client(jwt_gateway) as client:
        yield client


@pytest.fixture
def console(
    browser: Browser, request: pytest.FixtureRequest, jwt_gateway: WebGateway
) -> Iterator[Console]:
    permissions = ["clipboard-read", "clipboard-write"]
    with open_page(browser, request, permissions=permissions) as page:
        yield Console(page, jwt_gateway.url).sign_in_as(make_token(ADMIN_ID, admin=True))


def confirm(page: Page) -> None:
    expect(page.get_by_role("dialog")).to_be_visible()
    page.get_by_role("dialog").locator("#confirm-ok").click()
    expect(page.get_by_role("dialog")).to_be_hidden()


def test_a_keys_secret_is_shown_once_and_a_key_is_revoked(
    console: Console, admin: httpx.Client, seeded: Seeded
) -> None:
    page, view = console.page, console.view
    console.open("keys")
    # The seeded key's usage, from the ledger: one turn.
    row = view.get_by_role("row").filter(has_text=seeded.key_name)
    expect(row).to_contain_text("1 request ·")
    name = f"made-{secrets.token_hex(3)}"
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Kind").select_option("service")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("The new key's secret")
    expect(secret).to_have_value(re.compile(r"^cg_"))
    value = secret.input_value()
    page.get_by_role("button", name="Copy").click()
    expect(view.get_by_text("Copied.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == value
    console.screenshot("admin-key-secret-desktop.png")
    page.get_by_role("button", name="I have kept it").click()
    expect(secret).to_have_count(0)
    assert value not in page.content()
    page.reload()
    console.wait_view("keys")
    assert value not in page.content()
    # The secret works until the key is revoked.
    with httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {value}"}) as key:
        assert key.get("/v1/assistants").status_code == 200
        page.get_by_role("button", name=f"Revoke {name}").click()
        confirm(page)
        expect(view.get_by_role("row").filter(has_text=name)).to_contain_text("Revoked")
        assert key.get("/v1/assistants").status_code == 401
    made = [k for k in admin.get("/v1/admin/keys").json()["data"] if k["name"] == name]
    assert made[0]["kind"] == "service" and made[0]["revoked_at"] is not None


def test_a_document_is_uploaded_and_what_a_question_retrieves_is_shown(
    console: Console, admin: httpx.Client, seeded: Seeded
) -> None:
    page, view = console.page, console.view
    console.open("knowledge")
    view.get_by_role("link", name="Manuals").first.click()
    console.wait_view("knowledge")
    text = b"Descaling.\n\nDescale the Zephyr 9 kettle every month with white vinegar."
    upload = {"name": "descaling.txt", "mimeType": "text/plain", "buffer": text}
    page.get_by_label("Document (PDF, Word, HTML, Markdown or text)").set_input_files(upload)
    page.get_by_role("button", name="Upload").click()
    row = view.get_by_role("row").filter(has_text="descaling.txt")
    expect(row).to_contain_text("Ready", timeout=60_000)
    kb_id = page.evaluate("location.hash").split("/")[1]
    documents = admin.get(f"/v1/admin/knowledge-bases/{kb_id}/documents").json()["data"]
    assert {d["name"]: d["status"] for d in documents}["descaling.txt"] == "ready"

    page.get_by_role("searchbox", name="Question").fill("how often do I descale with vinegar")
    page.get_by_label("Search by").select_option("keyword")
    page.get_by_role("searchbox", name="Question").press("Enter")
    passages = view.locator(".passage")
    expect(passages.first).to_contain_text("descaling.txt")
    expect(passages.first).to_contain_text("white vinegar")
    expect(view.get_by_text(re.compile(r"\d+ passages? retrieved"))).to_be_visible()
    console.screenshot("admin-knowledge-search-desktop.png")


def settled_usage(admin: httpx.Client) -> list[dict[str, Any]]:
    """The usage by day once the ledger's batches (written every second) have all landed."""
    before = None
    for _ in range(20):
        rows: list[dict[str, Any]] = admin.get(
            "/v1/admin/usage", params={"group_by": "day"}
        ).json()["data"]
        if rows == before:
            return rows
        before = rows
        time.sleep(1.5)
    raise AssertionError("the usage kept changing")


def test_the_usage_totals_are_the_ledgers_and_a_budget_is_set(
    console: Console, admin: httpx.Client, seeded: Seeded
) -> None:
    page, view = console.page, console.view
    rows = settled_usage(admin)
    console.open("usage")
    requests = sum(r["requests"] for r in rows)
    tokens = sum(r["prompt_tokens"] for r in rows)
    expect(view.locator("[data-total='Requests']")).to_have_text(f"{requests:,}")
    expect(view.locator("[data-total='Prompt tokens']")).to_have_text(f"{tokens:,}")
    assert sum(r["cost"] for r in rows) > 0  # the seeded price applies
    expect(view.get_by_role("img", name="Cost by day")).to_be_visible()
    expect(view.get_by_role("img", name="Cost by model")).to_be_visible()
    page.get_by_label("Measure").select_option("tokens")
    expect(view.get_by_role("img", name="Tokens by user")).to_be_visible()
    # One user's usage alone.
    page.get_by_text("Only one user, key or assistant").click()
    page.get_by_label("User id", exact=True).fill(seeded.user_id)
    page.get_by_label("User id", exact=True).press("Enter")
    expect(view.locator("[data-total='Requests']")).to_have_text("1")
    users = view.get_by_role("region", name="Usage by user").locator("tbody tr")
    expect(users).to_have_count(1)
    expect(users).to_contain_text(seeded.user_id)
    page.get_by_label("User id", exact=True).fill("")
    page.get_by_role("button", name="Show").click()
    expect(view.locator("[data-total='Requests']")).to_have_text(f"{requests:,}")

    key_id = f"budget-key-{secrets.token_hex(3)}"
    page.get_by_label("For", exact=True).select_option("key")
    page.get_by_label("User id or key id").fill(key_id)
    page.get_by_label("Period").select_option("day")
    page.get_by_label("Most cost").fill("2.5")
    page.get_by_role("button", name="Set budget").click()
    expect(view.get_by_text(f"Budget set for key {key_id}.")).to_be_visible()
    expect(view.get_by_role("row").filter(has_text=f"key {key_id}")).to_contain_text("of 2.50")
    budget = admin.get(f"/v1/admin/budgets/key/{key_id}").json()
    assert (budget["period"], budget["max_cost"], budget["max_tokens"]) == ("day", 2.5, None)

    # A price for a model whose name holds a slash, set and removed.
    model = f"vendor/model-{secrets.token_hex(3)}"
    page.get_by_label("Model", exact=True).fill(model)
    page.get_by_label("Prompt, per million tokens").fill("0.15")
    page.get_by_label("Answer, per million tokens").fill("0.6")
    page.get_by_role("button", name="Set price").click()
    expect(view.get_by_role("row").filter(has_text=model)).to_contain_text("0.6")
    prices = {p["model"]: p for p in admin.get("/v1/admin/prices").json()["data"]}
    assert (prices[model]["input_per_million"], prices[model]["output_per_million"]) == (0.15, 0.6)
    page.get_by_role("button", name=f"Remove the price of {model}").click()
    confirm(page)
    expect(view.get_by_role("row").filter(has_text=model)).to_have_count(0)
    assert model not in {p["model"] for p in admin.get("/v1/admin/prices").json()["data"]}


def test_the_audit_log_is_filtered_and_paged(
    console: Console, admin: httpx.Client, jwt_gateway: WebGateway
) -> None:
    page, view = console.page, console.view
    assistant_id = f"audited-{secrets.token_hex(3)}"
    spec = {"id": assistant_id, "name": "Audited", "provider": "double", "model": "double-a"}
    assert admin.post("/v1/admin/assistants", json=spec).status_code == 201
    for n in range(52):
        changed = admin.patch(f"/v1/admin/assistants/{assistant_id}", json={"description": f"{n}"})
        assert changed.status_code == 200, changed.text
    console.open("audit")
    page.get_by_label("Action").fill("assistant.updated")
    page.get_by_label("Action").press("Enter")
    expect(view.get_by_text("50 events shown.")).to_be_visible()
    events = view.locator("tbody tr")
    expect(events.first).to_contain_text(f"assistant {assistant_id}")
    expect(events.first).to_contain_text('"to":"51"')
    view.get_by_role("button", name="Show older events").click()
    expect(view.get_by_text(re.compile(r"^(\d+) events shown\.$"))).not_to_have_text(
        "50 events shown."
    )
    assert events.count() > 50
    assert all(
        a == "assistant.updated" for a in view.locator("tbody tr td:nth-child(2)").all_inner_texts()
    )
    page.get_by_label("Action").fill("no.such.action")
    page.get_by_role("button", name="Filter").click()
    expect(view.get_by_text("No events match.")).to_be_visible()
    with user_client(jwt_gateway, "nobody-special") as user:
        assert user.get("/v1/admin/audit").status_code == 403


def test_a_person_answers_a_hand_off_and_hands_it_back(
    console: Console, jwt_gateway: WebGateway, seeded: Seeded
) -> None:
    page, view = console.page, console.view
    console.open("handoffs")
    row = view.get_by_role("row").filter(has_text=seeded.customer_id)
    expect(row).to_contain_text("Waiting")
    # The queue refreshes itself: a conversation handed off now appears without a reload.
    latecomer = f"latecomer-{secrets.token_hex(3)}"
    with user_client(jwt_gateway, latecomer) as user:
        assert ask(user, seeded.desk_id, "can I speak to a real person")["handoff"] is not None
    expect(view.get_by_role("row").filter(has_text=latecomer)).to_contain_text("Waiting")
    row.get_by_role("link").click()
    expect(view.get_by_text("I want to talk to a human please")).to_be_visible()
    page.get_by_label("Your reply").fill("Hello, this is Ana from support.")
    page.get_by_label("Your reply").press("Control+Enter")
    expect(view.locator(".convo-agent")).to_contain_text("Hello, this is Ana from support.")
    with user_client(jwt_gateway, seeded.customer_id) as customer:
        history = customer.get(f"/v1/history/{seeded.handoff_session}").json()["data"]
        assert [m["role"] for m in history][-1] == "agent"
        assert history[-1]["content"] == "Hello, this is Ana from support."
        page.get_by_role("button", name="Hand back to the assistant").click()
        expect(view.get_by_text("Handed back")).to_be_visible()
        session = customer.get(f"/v1/sessions/{seeded.handoff_session}").json()
        assert session["handoff"] is None or session["handoff"]["status"] == "released"
    # The queue (waiting only, its default) no longer lists it after its next refresh.
    page.get_by_role("link", name="← The queue").click()
    console.wait_view("handoffs")
    expect(view.get_by_role("row").filter(has_text=seeded.customer_id)).to_have_count(0)
    expect(view.get_by_role("row").filter(has_text=latecomer)).to_have_count(1)
