"""Switching assistant: the caller's latest session with it, or a new one; contexts never mix."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from chatgate.audit.models import AuditEvent
from tests.conftest import Caller, Gateway, assert_error, read_database


async def switch(caller: Caller, assistant_id: str) -> dict[str, Any]:
    response = await caller.http.post("/v1/switch-assistant", json={"assistant_id": assistant_id})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def say(caller: Caller, session_id: str, content: str) -> str:
    response = await caller.http.post(
        f"/v1/sessions/{session_id}/messages", json={"content": content}
    )
    assert response.status_code == 200, response.text
    return response.json()["message"]["content"]  # type: ignore[no-any-return]


async def test_first_switch_creates_a_session_then_returns_it(alice: Caller) -> None:
    first = await switch(alice, "support")
    assert first["created"] is True
    session = first["session"]
    assert session["assistant_id"] == "support" and session["message_count"] == 0
    again = await switch(alice, "support")
    assert again == {"session": session, "created": False}
    listed = (await alice.http.get("/v1/sessions")).json()["data"]
    assert [s["id"] for s in listed] == [session["id"]]


async def test_switch_returns_the_most_recently_used_session(alice: Caller, bob: Caller) -> None:
    older = await alice.new_session("support")
    newer = await alice.new_session("support")
    await alice.new_session("echo")
    await bob.new_session("support")
    assert (await switch(alice, "support"))["session"]["id"] == newer["id"]
    await say(alice, older["id"], "back to this one")
    chosen = await switch(alice, "support")
    assert chosen["created"] is False
    assert chosen["session"]["id"] == older["id"]
    assert chosen["session"]["message_count"] == 2
    # bob's sessions are never anyone else's latest.
    assert (await switch(bob, "echo"))["created"] is True


async def test_contexts_of_two_assistants_never_mix(alice: Caller, gateway: Gateway) -> None:
    requests = gateway.double.api.requests
    echo = (await switch(alice, "echo"))["session"]
    start = len(requests)
    assert await say(alice, echo["id"], "my parcel is marked zebra") == (
        "echo: my parcel is marked zebra"
    )
    support = (await switch(alice, "support"))["session"]
    assert support["id"] != echo["id"]
    await say(alice, support["id"], "where is my parcel?")
    await say(alice, support["id"], "any news?")
    back = (await switch(alice, "echo"))["session"]
    assert back["id"] == echo["id"]
    await say(alice, echo["id"], "and the label?")

    sent = requests[start:]
    assert [r["model"] for r in sent] == [
        "double-echo",
        "double-support",
        "double-support",
        "double-echo",
    ]
    for request in sent[1:3]:
        assert request["messages"][0] == {"role": "system", "content": "You are support."}
        assert "zebra" not in str(request["messages"])
        assert "Echo the user." not in str(request["messages"])
    assert [m["content"] for m in sent[2]["messages"]] == [
        "You are support.",
        "where is my parcel?",
        "echo: where is my parcel?",
        "any news?",
    ]
    assert [m["content"] for m in sent[3]["messages"]] == [
        "Echo the user.",
        "my parcel is marked zebra",
        "echo: my parcel is marked zebra",
        "and the label?",
    ]
    echo_history = await alice.history(echo["id"])
    assert "parcel?" not in str([m["content"] for m in echo_history["data"]])


async def test_switches_are_audited(alice: Caller, gateway: Gateway) -> None:
    made = await switch(alice, "tiny")
    kept = await switch(alice, "tiny")
    async with read_database(gateway.settings.database_url) as db:
        events = (
            await db.scalars(
                select(AuditEvent)
                .where(
                    AuditEvent.action == "assistant.switched",
                    AuditEvent.user_id == alice.user_id,
                )
                .order_by(AuditEvent.id)
            )
        ).all()
    assert [(e.target_type, e.target_id) for e in events] == [
        ("session", made["session"]["id"]),
        ("session", made["session"]["id"]),
    ]
    assert [e.details for e in events] == [
        {"assistant_id": "tiny", "created": True},
        {"assistant_id": "tiny", "created": False},
    ]
    assert kept["created"] is False


async def test_switch_to_an_unknown_assistant_changes_nothing(
    alice: Caller, gateway: Gateway
) -> None:
    response = await alice.http.post("/v1/switch-assistant", json={"assistant_id": "nobody"})
    assert_error(response, 404, "assistant_not_found")
    assert_error(await alice.http.post("/v1/switch-assistant", json={}), 422, "validation_error")
    assert (await alice.http.get("/v1/sessions")).json()["data"] == []
    async with read_database(gateway.settings.database_url) as db:
        events = (
            await db.scalars(select(AuditEvent).where(AuditEvent.user_id == alice.user_id))
        ).all()
    assert events == []
