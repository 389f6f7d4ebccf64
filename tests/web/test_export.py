""" "Export my data" in a real browser: each button downloads the export with the page's own
credentials (in auth mode jwt, the token the person signed in with), under the server's name."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import make_token
from tests.web.conftest import Chat, WebGateway, open_page


def download(page: Page, name: str, folder: Path) -> Path:
    with page.expect_download() as started:
        page.get_by_role("button", name=name).click()
    saved = folder / started.value.suggested_filename
    started.value.save_as(saved)
    expect(page.locator("#export-status")).to_have_text("Your export has been downloaded.")
    return saved


def test_export_my_data_downloads_json_and_markdown(chat: Chat, tmp_path: Path) -> None:
    chat.open()
    chat.ask("Where is my parcel to Lyon?")
    saved = download(chat.page, "Export my data (JSON)", tmp_path)
    assert saved.name.startswith("chatgate-export-") and saved.suffix == ".json"
    exported = json.loads(saved.read_text())
    assert exported["user_id"] == "local"
    (session,) = exported["sessions"]
    assert session["id"] == chat.session_id()
    assert [m["content"] for m in session["messages"]] == [
        "Where is my parcel to Lyon?", "echo: Where is my parcel to Lyon?",
    ]  # fmt: skip

    saved = download(chat.page, "Export my data (Markdown)", tmp_path)
    assert saved.suffix == ".zip"
    with zipfile.ZipFile(saved) as archive:
        (name,) = archive.namelist()
        assert "Where is my parcel to Lyon?" in archive.read(name).decode()


def test_the_export_is_made_with_the_signed_in_token(
    browser: Browser, request: pytest.FixtureRequest, jwt_gateway: WebGateway, tmp_path: Path
) -> None:
    user = "exporting-person"
    with jwt_gateway.client() as api:
        headers = {"Authorization": f"Bearer {make_token(user)}"}
        created = api.post("/v1/sessions", json={"assistant_id": "echo"}, headers=headers)
        assert created.status_code == 201, created.text
    with open_page(browser, request, accept_downloads=True) as page:
        page.goto(jwt_gateway.url)
        page.get_by_label("Access token or API key").fill(make_token(user))
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_label("Message", exact=True)).to_be_enabled()
        exported = json.loads(download(page, "Export my data (JSON)", tmp_path).read_text())
    assert exported["user_id"] == user
    assert [s["id"] for s in exported["sessions"]] == [created.json()["id"]]
