"""A conversation held through OpenAI's Responses API, tools included, in a real browser: an
answer's call of a tool is a small line naming the function and its arguments, the tool's
result a collapsed block that opens on a click; markup in either is shown as text, never run."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.sync_api import expect

from tests.web.conftest import Chat

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
RESULT = "<img src=x onerror=\"document.title='pwned'\"> 22 C and sunny"


def respond(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/v1/responses", json={"model": "echo", **body})
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    return reply


def test_tool_calls_and_results_show_in_the_conversation(chat: Chat, api: httpx.Client) -> None:
    asked = respond(api, input="weather in Paris?", tools=[WEATHER])
    call = asked["output"][0]
    assert call["type"] == "function_call"
    respond(
        api,
        previous_response_id=asked["id"],
        input=[{"type": "function_call_output", "call_id": call["call_id"], "output": RESULT}],
        tools=[WEATHER],
    )
    chat.open()
    expect(chat.messages).to_have_count(4)
    asking = chat.messages.nth(1)
    expect(asking).to_have_class("msg msg-assistant")
    expect(asking.locator(".msg-body")).to_have_text("Called a tool.")
    expect(asking.locator(".tool-call")).to_have_text(f"Called get_weather({call['arguments']})")

    result = chat.messages.nth(2)
    expect(result).to_have_class("msg msg-tool")
    expect(result.locator(".msg-role")).to_have_text("Tool")
    text = result.locator(".tool-result-text")
    expect(text).to_be_hidden()
    result.locator(".tool-result summary").click()
    expect(text).to_be_visible()
    expect(text).to_have_text(RESULT)
    expect(chat.messages.nth(3).locator(".msg-body")).to_contain_text("22 C and sunny")
    assert chat.page.title() != "pwned"
    assert chat.page.locator("img[src='x']").count() == 0
