"""The console's door: served at /admin with the chat page's headers, the sign-in it shares with
the chat page, and a caller who is not an admin gets nothing of it: no view, no data."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Browser, Response, expect

from tests.conftest import make_token
from tests.web.conftest import PHONE, WebGateway, open_page
from tests.web.console import ADMIN_ID, Console


@pytest.mark.parametrize("path", ["/admin", "/admin/"])
def test_the_console_is_served_with_the_pages_headers(jwt_gateway: WebGateway, path: str) -> None:
    response = httpx.get(jwt_gateway.url + path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="/static/admin/app.js">' in response.text
    assert response.headers["cache-control"] == "no-cache"
    for file in ("/static/admin/app.js", "/static/admin/views.css", "/static/vendor/diff.min.js"):
        served = httpx.get(jwt_gateway.url + file)
        assert served.status_code == 200, file
        assert "script-src 'self'" in served.headers["content-security-policy"]


SIGN_IN = "Sign in to the chatgate console"
NOT_AN_ADMIN = "This console is for admins"


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_a_user_who_is_not_an_admin_gets_nothing(
    browser: Browser, request: pytest.FixtureRequest, jwt_gateway: WebGateway, size: str
) -> None:
    options = {"viewport": PHONE} if size == "phone" else {}
    with open_page(browser, request, **options) as page:
        asked: list[Response] = []
        page.on("response", lambda r: asked.append(r) if "/v1/" in r.url else None)
        console = Console(page, jwt_gateway.url)
        page.goto(f"{jwt_gateway.url}/admin#usage")
        expect(page.get_by_role("heading", name=SIGN_IN)).to_be_visible()
        page.get_by_label("Access token or API key").fill(make_token("just-a-user"))
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name=NOT_AN_ADMIN)).to_be_visible()
        # A reload, and another view asked for by its address: still nothing.
        page.goto(f"{jwt_gateway.url}/admin#keys")
        page.reload()
        expect(page.get_by_role("heading", name=NOT_AN_ADMIN)).to_be_visible()
        expect(page.locator("#console")).to_be_hidden()
        expect(page.get_by_role("navigation")).to_have_count(0)
        expect(page.locator("#view")).to_be_empty()
        expect(page.locator("table")).to_have_count(0)
        page.wait_for_load_state("networkidle")
        assert asked, "the console never asked who is calling"
        # Only the admin check was made, and every one was refused (401 before the sign-in):
        # no data reached the page.
        assert {r.url.split("/v1/")[1] for r in asked} == {"admin/assistants"}
        assert {r.status for r in asked} == {401, 403}
        console.screenshot(f"admin-not-an-admin-{size}.png")


def test_an_admin_signs_in_and_out(
    browser: Browser, request: pytest.FixtureRequest, jwt_gateway: WebGateway
) -> None:
    with open_page(browser, request) as page:
        console = Console(page, jwt_gateway.url)
        page.goto(f"{jwt_gateway.url}/admin")
        expect(page.get_by_label("Access token or API key")).to_be_focused()
        page.get_by_label("Access token or API key").fill("not-a-token")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#signin-error")).to_contain_text("was not accepted")
        page.get_by_label("Access token or API key").fill(make_token(ADMIN_ID, admin=True))
        page.get_by_role("button", name="Sign in").click()
        console.wait_view("assistants")
        expect(console.view.get_by_role("link", name="Echo", exact=True)).to_be_visible()
        # The chat page's sign-in: the same token, kept in the same place.
        page.goto(jwt_gateway.url)
        expect(page.get_by_role("tab", name="Echo", exact=True)).to_be_visible()
        page.goto(f"{jwt_gateway.url}/admin")
        console.wait_view("assistants")
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name=SIGN_IN)).to_be_visible()
        assert page.evaluate("localStorage.getItem('chatgate.token')") is None

        # A token that expires while the console is open: the next view sends it to the sign-in.
        page.get_by_label("Access token or API key").fill(make_token(ADMIN_ID, admin=True))
        page.get_by_role("button", name="Sign in").click()
        console.wait_view("assistants")
        expired = make_token(ADMIN_ID, admin=True, ttl=-60)
        page.evaluate("t => localStorage.setItem('chatgate.token', t)", expired)
        page.get_by_role("link", name="Audit log").click()
        expect(page.get_by_role("heading", name=SIGN_IN)).to_be_visible()
        expect(page.locator("#signin-error")).to_have_text(
            "Your sign-in has expired. Please sign in again."
        )
        expect(page.locator("#view")).to_be_empty()
