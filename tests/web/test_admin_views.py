"""Every view of the console with real data (a chat, a key, a knowledge base, a budget and a
hand-off made through the API first), on a desktop and a phone: what each shows, that nothing
is wider than the screen, and a screenshot of each in test-artifacts/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.conftest import make_token
from tests.web.conftest import PHONE, WebGateway, open_page
from tests.web.console import ADMIN_ID, VIEWS, Console, Seeded, admin_client, seed


@pytest.fixture(scope="module")
def seeded(jwt_gateway: WebGateway) -> Seeded:
    return seed(jwt_gateway)


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_every_view_shows_its_data(
    browser: Browser,
    request: pytest.FixtureRequest,
    jwt_gateway: WebGateway,
    seeded: Seeded,
    size: str,
) -> None:
    options = {"viewport": PHONE} if size == "phone" else {}
    with open_page(browser, request, **options) as page:
        console = Console(page, jwt_gateway.url).sign_in_as(make_token(ADMIN_ID, admin=True))
        console.open("assistants")
        view = console.view
        if size == "phone":
            expect(page.get_by_role("navigation", name="Console")).to_be_hidden()
        cell = lambda text: view.get_by_role("cell", name=text, exact=True).first  # noqa: E731
        shows = {
            "assistants": view.get_by_role("link", name="Echo", exact=True),
            "knowledge": view.get_by_role("link", name="Manuals").first,
            "keys": cell(seeded.key_name),
            "usage": cell(seeded.user_id),
            "audit": view.get_by_text("key.created").first,
            "handoffs": cell(seeded.desk_id),
        }
        for name in VIEWS:
            console.go(name)
            expect(shows[name]).to_be_visible()
            console.fits_the_width()
            console.screenshot(f"admin-{name}-{size}.png")
        # The budgets are part of the usage view.
        console.go("usage")
        expect(cell(f"user {seeded.user_id}")).to_be_visible()
        # The views an operator opens from the lists.
        page.goto(f"{jwt_gateway.url}/admin#assistants/echo")
        console.wait_view("assistants")
        expect(view.get_by_label("System prompt")).to_have_value("You are Echo.")
        console.fits_the_width()
        console.screenshot(f"admin-assistant-{size}.png")
        page.goto(f"{jwt_gateway.url}/admin#knowledge/{seeded.kb_id}")
        console.wait_view("knowledge")
        expect(view.get_by_role("cell", name="kettle.md")).to_be_visible()
        expect(view.get_by_text("Ready")).to_be_visible()
        console.fits_the_width()
        console.screenshot(f"admin-knowledge-base-{size}.png")
        console.go("handoffs")
        view.get_by_role("link", name=f"Open {seeded.customer_id}'s conversation").click()
        expect(view.get_by_text("I want to talk to a human please")).to_be_visible()
        console.fits_the_width()
        console.screenshot(f"admin-handoff-{size}.png")


def tab_to(page: Page, name: str, limit: int = 30) -> None:
    """Presses Tab until the element named `name` has the focus, and checks it shows it."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        label = page.evaluate(
            "(document.activeElement.getAttribute('aria-label') || document.activeElement"
            ".textContent || '').trim()"
        )
        if label == name:
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none", f"{name} has the focus but does not show it"
            return
    raise AssertionError(f"{name} never had the focus")


def test_the_console_works_from_the_keyboard(
    browser: Browser, request: pytest.FixtureRequest, jwt_gateway: WebGateway, seeded: Seeded
) -> None:
    with open_page(browser, request) as page:
        console = Console(page, jwt_gateway.url).sign_in_as(make_token(ADMIN_ID, admin=True))
        console.open("keys")
        # The skip link (the first stop) goes to the view's heading and stays on the view.
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to the content")).to_be_focused()
        page.keyboard.press("Enter")
        expect(console.heading()).to_be_focused()
        assert page.evaluate("location.hash") == "#keys"
        console.open("assistants")
        tab_to(page, "API keys")
        page.keyboard.press("Enter")
        console.wait_view("keys")
        expect(console.heading()).to_be_focused()
        page.keyboard.press("Tab")
        expect(page.get_by_label("Name", exact=True)).to_be_focused()
        name = f"typed-{seeded.user_id[-6:]}"
        page.keyboard.type(name)
        page.keyboard.press("Tab")
        expect(page.get_by_label("Kind")).to_be_focused()
        page.keyboard.press("Tab")
        page.keyboard.type("typed-user")
        page.keyboard.press("Enter")
        secret = page.get_by_label("The new key's secret")
        expect(secret).to_have_value(re.compile(r"^cg_"))
        expect(page.get_by_role("button", name="Copy")).to_be_focused()
        page.keyboard.press("Escape")
        expect(secret).to_have_count(0)
        expect(page.get_by_label("Name", exact=True)).to_be_focused()
        expect(console.view.get_by_role("cell", name=name, exact=True)).to_be_visible()
        # Escape cancels a confirmation: the key is still there.
        page.get_by_role("button", name=f"Revoke {name}").focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("dialog")).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.get_by_role("dialog")).to_be_hidden()
        with admin_client(jwt_gateway) as admin:
            keys = {k["name"]: k for k in admin.get("/v1/admin/keys").json()["data"]}
        assert keys[name]["user_id"] == "typed-user"
        assert keys[name]["revoked_at"] is None


def test_the_menu_folds_on_a_phone_and_escape_closes_it(
    browser: Browser, request: pytest.FixtureRequest, jwt_gateway: WebGateway
) -> None:
    with open_page(browser, request, viewport=PHONE) as page:
        console = Console(page, jwt_gateway.url).sign_in_as(make_token(ADMIN_ID, admin=True))
        console.open("assistants")
        menu = page.get_by_role("navigation", name="Console")
        expect(menu).to_be_hidden()
        tab_to(page, "Show the menu")
        page.keyboard.press("Enter")
        expect(menu).to_be_visible()
        expect(page.get_by_role("button", name="Hide the menu")).to_have_attribute(
            "aria-expanded", "true"
        )
        page.keyboard.press("Escape")
        expect(menu).to_be_hidden()
        expect(page.get_by_role("button", name="Show the menu")).to_be_focused()
        page.keyboard.press("Enter")
        tab_to(page, "Audit log")
        page.keyboard.press("Enter")
        console.wait_view("audit")
        expect(menu).to_be_hidden()
        console.fits_the_width()


def test_a_view_says_it_is_loading_what_went_wrong_and_tries_again(
    browser: Browser, request: pytest.FixtureRequest, jwt_gateway: WebGateway, seeded: Seeded
) -> None:
    with open_page(browser, request) as page:
        console = Console(page, jwt_gateway.url).sign_in_as(make_token(ADMIN_ID, admin=True))
        held: list[Route] = []
        usage = re.compile(r".*/v1/admin/usage\?group_by=day.*")
        page.route(usage, lambda route: held.append(route))
        page.goto(f"{jwt_gateway.url}/admin#usage")
        expect(
            console.view.get_by_role("status").filter(has_text="Loading the usage…")
        ).to_be_visible()
        for _ in range(200):
            if held:
                break
            page.wait_for_timeout(25)
        body = {"error": {"code": "ledger_down", "message": "no ledger", "trace_id": "trace-t"}}
        held.pop().fulfill(status=503, json=body)
        alert = console.view.get_by_role("alert").filter(has_text="no ledger")
        expect(alert).to_contain_text("no ledger (ledger_down). Trace id: trace-t.")
        page.unroute(usage)
        alert.get_by_role("button", name="Try again").click()
        expect(console.view.get_by_role("cell", name=seeded.user_id, exact=True)).to_be_visible()
        expect(alert).to_have_count(0)
