"""The keyboard (Enter, Shift+Enter, input methods), labels and focus, a phone-sized screen,
and screenshots of the page kept in test-artifacts/."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.web.conftest import DESKTOP, PHONE, Chat, WebGateway, open_page

COMPOSE_AND_ENTER = """(input) => {
  input.focus();
  input.dispatchEvent(new CompositionEvent('compositionstart', {data: '', bubbles: true}));
  input.dispatchEvent(new CompositionEvent('compositionupdate', {data: 'ni', bubbles: true}));
  // Chrome and Firefox: the Enter that picks a candidate comes while composing.
  const picking = new KeyboardEvent('keydown', {
    key: 'Enter', code: 'Enter', isComposing: true, bubbles: true, cancelable: true,
  });
  input.dispatchEvent(picking);
  input.value = '你好';
  input.dispatchEvent(new CompositionEvent('compositionend', {data: '你好', bubbles: true}));
  // Safari: the same Enter arrives after compositionend, with keyCode 229.
  const late = new KeyboardEvent('keydown', {
    key: 'Enter', code: 'Enter', bubbles: true, cancelable: true,
  });
  Object.defineProperty(late, 'keyCode', {value: 229});
  input.dispatchEvent(late);
  return {picking: picking.defaultPrevented, late: late.defaultPrevented};
}"""

UNNAMED_CONTROLS = """() => [
  ...document.querySelectorAll('button, input, textarea, select, [role=tab]')]
  .filter(el => el.offsetParent !== null)
  .filter(el => {
    const labelled = (el.getAttribute('aria-label') || '').trim()
      || (el.labels && [...el.labels].some(l => l.textContent.trim()))
      || (el.getAttribute('aria-labelledby') || '').trim()
      || el.textContent.trim();
    return !labelled;
  })
  .map(el => el.outerHTML.slice(0, 120))"""


def test_enter_sends_and_shift_enter_starts_a_new_line(chat: Chat, api: httpx.Client) -> None:
    chat.open()
    chat.input.click()
    chat.page.keyboard.type("line one")
    chat.page.keyboard.press("Shift+Enter")
    chat.page.keyboard.type("line two")
    expect(chat.input).to_have_value("line one\nline two")
    expect(chat.messages).to_have_count(0)

    chat.page.keyboard.press("Enter")
    expect(chat.messages).to_have_count(2)
    expect(chat.input).to_have_value("")
    expect(chat.input).to_be_focused()
    question = chat.messages.first.locator(".msg-body")
    expect(question.locator("br")).to_have_count(1)
    assert question.inner_text() == "line one\nline two"
    expect(chat.last_answer()).to_have_attribute("data-status", "complete")
    stored = api.get(f"/v1/history/{chat.session_id()}").json()["data"]
    assert stored[0]["content"] == "line one\nline two"

    # Enter on an empty box sends nothing.
    chat.page.keyboard.press("Enter")
    chat.page.keyboard.press("Shift+Enter")
    chat.page.keyboard.press("Enter")
    expect(chat.messages).to_have_count(2)


def test_enter_while_an_input_method_composes_does_not_send(chat: Chat) -> None:
    chat.open()
    handled = chat.input.evaluate(COMPOSE_AND_ENTER)
    assert handled == {"picking": False, "late": False}, "the page must leave those Enters alone"
    chat.page.wait_for_timeout(300)
    expect(chat.messages).to_have_count(0)
    expect(chat.input).to_have_value("你好")

    # Once the input method is done, Enter sends what it wrote.
    chat.input.press("Enter")
    expect(chat.messages.first.locator(".msg-body")).to_have_text("你好")
    expect(chat.last_answer().locator(".msg-body")).to_have_text("echo: 你好")


def test_an_input_method_in_the_real_browser_does_not_send(chat: Chat) -> None:
    """The browser's own composition (as an input method drives it), through DevTools."""
    chat.open()
    chat.input.focus()
    devtools = chat.page.context.new_cdp_session(chat.page)
    devtools.send(
        "Input.imeSetComposition", {"text": "zhong", "selectionStart": 5, "selectionEnd": 5}
    )
    devtools.send(
        "Input.dispatchKeyEvent",
        {"type": "keyDown", "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 229},
    )
    devtools.send(
        "Input.dispatchKeyEvent",
        {"type": "keyUp", "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 229},
    )
    devtools.send("Input.insertText", {"text": "中"})
    chat.page.wait_for_timeout(300)
    expect(chat.messages).to_have_count(0)
    expect(chat.input).to_have_value("中")
    chat.input.press("Enter")
    expect(chat.messages.first.locator(".msg-body")).to_have_text("中")


def test_controls_have_labels_and_a_visible_focus(chat: Chat) -> None:
    chat.open()
    chat.ask("hello")
    page = chat.page
    assert page.evaluate(UNNAMED_CONTROLS) == []
    expect(page.get_by_role("tablist", name="Assistants")).to_be_visible()
    expect(page.get_by_role("tabpanel")).to_have_attribute("aria-labelledby", "tab-echo")
    expect(page.get_by_role("textbox", name="Message")).to_be_visible()
    expect(page.get_by_role("list", name="Messages")).to_be_visible()
    expect(page.get_by_role("complementary", name="Conversations")).to_be_visible()
    expect(page.get_by_role("button", name="Rename “hello”")).to_be_attached()
    expect(page.locator("html")).to_have_attribute("lang", "en")

    # From the top, Tab reaches the skip link first; it leads to the message box.
    page.reload()
    chat.wait_ready()
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to the message box")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Tab")
    expect(chat.tab("Echo")).to_be_focused()
    focused = page.evaluate(
        """() => { const s = getComputedStyle(document.activeElement);
                   return {style: s.outlineStyle, width: parseFloat(s.outlineWidth)}; }"""
    )
    assert focused["style"] != "none" and focused["width"] >= 2, focused
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    expect(chat.input).to_be_focused()


def test_a_phone_sized_screen_is_usable(
    browser: Browser, request: pytest.FixtureRequest, web_gateway: WebGateway, api: httpx.Client
) -> None:
    with open_page(browser, request, viewport=PHONE, is_mobile=True, has_touch=True) as page:
        chat = Chat(page, web_gateway.url).open()
        chat.ask("Show me a long line:\n\n```\n" + "x" * 300 + "\n```\n\nand a " + "y" * 80)
        chat.ask("[[slow 12 0.02]] and more")

        # Nothing spills sideways: the page itself never scrolls horizontally.
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], width
        for control in (chat.input, page.get_by_role("button", name="Send"), chat.tab("Echo")):
            expect(control).to_be_in_viewport()
        box = chat.input.bounding_box()
        assert box and box["y"] + box["height"] <= PHONE["height"]
        expect(page.get_by_role("complementary", name="Conversations")).to_be_hidden()
        chat.screenshot("web-phone.png")

        toggle = page.get_by_role("button", name="Show conversations")
        expect(toggle).to_have_attribute("aria-expanded", "false")
        toggle.tap()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        drawer = page.get_by_role("complementary", name="Conversations")
        expect(drawer).to_be_visible()
        expect(drawer.get_by_role("button", name="New")).to_be_in_viewport()
        expect(drawer.locator(".session-open")).to_have_count(1)
        expect(drawer.locator(".session-open")).to_have_attribute("aria-current", "true")
        page.wait_for_function(
            "() => document.getElementById('sidebar').getBoundingClientRect().left === 0"
        )
        chat.screenshot("web-phone-conversations.png")
        page.keyboard.press("Escape")
        expect(drawer).to_be_hidden()

        toggle.tap()
        drawer.get_by_role("button", name="Close conversations").tap()
        expect(drawer).to_be_hidden()
        expect(toggle).to_be_focused()

        # A new conversation from the drawer, then back to the first one.
        toggle.tap()
        drawer.get_by_role("button", name="New").tap()
        expect(drawer).to_be_hidden()
        expect(chat.messages).to_have_count(0)
        toggle.tap()
        drawer.locator(".session-open").nth(1).tap()
        expect(drawer).to_be_hidden()
        expect(chat.messages).to_have_count(4)


def test_screenshots_of_the_page(
    chat: Chat, browser: Browser, request: pytest.FixtureRequest, web_gateway: WebGateway
) -> None:
    chat.open()
    chat.ask("How do I read a file in Python? Give a **short** example and a link to the docs.")
    chat.ask(
        "Thanks! Now list:\n\n1. open it\n2. read it\n\n```python\nwith open('notes.txt') as f:"
        "\n    print(f.read())\n```\n\nDocs: [io](https://docs.python.org/3/library/io.html)"
    )
    chat.send("[[slow 200 0.05]] tell me a long story")
    expect(chat.last_answer().locator(".msg-body")).to_contain_text("w12")
    chat.page.get_by_role("button", name="Stop").click()
    expect(chat.last_answer()).to_have_attribute("data-status", "interrupted")
    path = chat.screenshot("web-desktop.png")
    assert path.stat().st_size > 20_000

    with open_page(browser, request, viewport=DESKTOP, color_scheme="dark") as dark:
        Chat(dark, web_gateway.url).open()
        expect(dark.locator("#messages > li")).to_have_count(6)
        background = dark.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background != "rgb(246, 247, 249)", "dark mode follows prefers-color-scheme"
        Chat(dark, web_gateway.url).screenshot("web-desktop-dark.png")
