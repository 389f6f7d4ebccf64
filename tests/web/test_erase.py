""" "Delete my data" in a real browser: nothing happens until the person confirms; confirmed,
DELETE /v1/me erases every conversation and the page starts afresh with an empty one."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.web.conftest import Chat


def sessions(api: httpx.Client) -> list[dict[str, object]]:
    data: list[dict[str, object]] = api.get("/v1/sessions", params={"limit": 100}).json()["data"]
    return data


def test_delete_my_data_asks_first_then_erases_everything(chat: Chat, api: httpx.Client) -> None:
    chat.open()
    chat.ask("Please remember my address: 5 Orchard Row")
    page = chat.page
    erase = page.get_by_role("button", name="Delete my data")
    dialog = page.get_by_role("dialog")

    erase.click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Delete all your data?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert len(sessions(api)) == 1  # nothing erased without a yes

    erase.click()
    dialog.get_by_role("button", name="Delete my data").click()
    expect(page.locator("#erase-status")).to_have_text("Your data has been deleted.")
    expect(chat.answers).to_have_count(0)
    chat.wait_ready()
    left = sessions(api)
    assert len(left) <= 1 and all(s["message_count"] == 0 for s in left)
    expect(page.locator("#session-list")).not_to_contain_text("5 Orchard Row")
