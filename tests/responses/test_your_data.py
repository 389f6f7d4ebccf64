"""A conversation held through the Responses API is the user's data like any other: the export
carries its calls of tools and their results, erasure takes its stored responses with it, and a
session deleted through chatgate's own API takes its responses."""

from __future__ import annotations

import io
import json
import zipfile

import openai
import pytest
from sqlalchemy import func, select

from chatgate.responses.models import StoredResponse
from tests.conftest import Gateway, read_database
from tests.responses.conftest import WEATHER, Client, session_of


def tool_loop(client: Client) -> tuple[str, str, str]:
    """A conversation with a call and its result; its session's id, the call's and the last
    response's."""
    asked = client.sdk.responses.create(
        model="echo",
        input="weather in Quito?",
        tools=[WEATHER],
    )
    call = next(item for item in asked.output if item.type == "function_call")
    answered = client.sdk.responses.create(
        model="echo",
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "19 C"}],
    )
    return session_of(asked), call.call_id, answered.id


async def stored_responses(database_url: str, user_id: str) -> int:
    async with read_database(database_url) as db:
        count = await db.scalar(
            select(func.count())
            .select_from(StoredResponse)
            .where(StoredResponse.user_id == user_id)
        )
    return int(count or 0)


def test_the_export_carries_calls_and_results(alice: Client) -> None:
    session_id, call_id, _ = tool_loop(alice)
    exported = alice.http.get("/v1/me/export", params={"format": "json"})
    assert exported.status_code == 200, exported.text
    (session,) = [s for s in json.loads(exported.content)["sessions"] if s["id"] == session_id]
    messages = session["messages"]
    assert messages == alice.history(session_id)  # as the history API shows them
    assert messages[1]["tool_calls"][0]["id"] == call_id
    assert messages[2]["role"] == "tool" and messages[2]["tool_call_id"] == call_id

    zipped = alice.http.get("/v1/me/export", params={"format": "markdown"})
    assert zipped.status_code == 200
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        (name,) = archive.namelist()
        text = archive.read(name).decode()
    assert f"Called tool `get_weather` ({call_id}) with:" in text
    assert f"_Result of tool call {call_id}:_\n\n19 C" in text
    assert "_(no text)_" not in text


async def test_erasure_and_session_deletion_take_the_stored_responses(
    gateway: Gateway, alice: Client, bob: Client, database_url: str
) -> None:
    session_id, _, last = tool_loop(alice)
    first = alice.sdk.responses.create(model="echo", input="another one")
    assert await stored_responses(database_url, alice.user_id) == 3
    deleted = alice.http.delete(f"/v1/sessions/{session_id}")
    assert deleted.status_code == 204
    assert await stored_responses(database_url, alice.user_id) == 1

    tool_loop(bob)
    assert bob.http.delete("/v1/me").status_code == 204
    assert await stored_responses(database_url, bob.user_id) == 0
    assert await stored_responses(database_url, alice.user_id) == 1
    assert alice.sdk.responses.retrieve(first.id).output_text == "echo: another one"
    with pytest.raises(openai.NotFoundError):
        alice.sdk.responses.create(model="echo", input="x", previous_response_id=last)
