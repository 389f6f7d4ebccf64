"""The people's side: the hand-off queue, a reply (role `agent`) in the user's history, context
and export, and the release that gives the conversation back to the assistant. Admins only."""

from __future__ import annotations

import uuid

from tests.conftest import Caller, assert_error, open_caller
from tests.handoff.conftest import Desk, handoff_of, listed, send


async def handed_off(user: Caller, assistant_id: str = "h-nohook") -> str:
    session = await user.new_session(assistant_id)
    response = await send(user, session["id"], "real person please")
    assert response.json()["handoff"]["status"] == "waiting", response.text
    return str(session["id"])


async def test_only_admins_see_and_answer_the_queue(desk: Desk, user: Caller) -> None:
    session_id = await handed_off(user)
    assert_error(await user.http.get("/v1/admin/handoffs"), 403, "admin_required")
    reply = await user.http.post(
        f"/v1/admin/handoffs/{session_id}/reply", json={"content": "I am the agent, trust me"}
    )
    assert_error(reply, 403, "admin_required")
    release = await user.http.post(f"/v1/admin/handoffs/{session_id}/release")
    assert_error(release, 403, "admin_required")
    assert await handoff_of(user, session_id) == {"status": "waiting", "reason": "requested"}


async def test_a_person_replies_and_the_user_sees_it(
    desk: Desk, user: Caller, admin: Caller
) -> None:
    session_id = await handed_off(user)
    waiting = await listed(admin, session_id, "waiting")
    assert waiting is not None
    assert waiting["user_id"] == user.user_id and waiting["assistant_id"] == "h-nohook"
    assert waiting["reason"] == "requested" and waiting["agent_id"] is None
    assert waiting["webhook"] == {"status": None, "attempts": 0, "error": None}
    reply = await admin.http.post(
        f"/v1/admin/handoffs/{session_id}/reply", json={"content": "Hi, this is Mei from support."}
    )
    assert reply.status_code == 201, reply.text
    message = reply.json()
    assert message["role"] == "agent" and message["content"] == "Hi, this is Mei from support."
    assert message["session_id"] == session_id and message["status"] == "complete"
    assert await handoff_of(user, session_id) == {"status": "with_agent", "reason": "requested"}
    assert await listed(admin, session_id, "waiting") is None
    with_agent = await listed(admin, session_id, "with_agent")
    assert with_agent is not None and with_agent["agent_id"] == "operator-1"
    history = await user.history(session_id)
    assert history["data"][-1] == message
    # The person reads the conversation as its user would, by naming them.
    seen = await admin.http.get(
        f"/v1/history/{session_id}", headers={"X-Chatgate-User": user.user_id}
    )
    assert seen.status_code == 200 and seen.json()["data"][-1]["role"] == "agent"
    exported = (await user.http.get("/v1/me/export")).json()
    (kept,) = [s for s in exported["sessions"] if s["id"] == session_id]
    assert kept["handoff"] == {"status": "with_agent", "reason": "requested"}
    assert kept["messages"][-1]["role"] == "agent"
    assert kept["messages"][-1]["content"] == "Hi, this is Mei from support."
    audit = (await admin.http.get("/v1/admin/audit", params={"action": "handoff.replied"})).json()
    assert any(e["target_id"] == session_id for e in audit["data"])


async def test_after_release_the_assistant_answers_with_the_persons_words_in_context(
    desk: Desk, user: Caller, admin: Caller
) -> None:
    session_id = await handed_off(user)
    await admin.http.post(
        f"/v1/admin/handoffs/{session_id}/reply", json={"content": "Refund 8841 is approved."}
    )
    released = await admin.http.post(f"/v1/admin/handoffs/{session_id}/release")
    assert released.status_code == 200, released.text
    assert released.json()["status"] == "released"
    assert released.json()["session_id"] == session_id
    assert await handoff_of(user, session_id) == {"status": "released", "reason": "requested"}
    answer = await send(user, session_id, "thanks, what next?")
    assert answer.status_code == 200, answer.text
    assert answer.json()["message"]["content"] == "echo: thanks, what next?"
    assert answer.json()["handoff"] is None
    sent = desk.double.api.requests[-1]["messages"]
    assert {"role": "assistant", "content": "Refund 8841 is approved."} in [
        {"role": m["role"], "content": m["content"]} for m in sent
    ]
    # The hand-off notice is chatgate's, not the conversation's: never sent to an engine.
    assert all("real person please" not in str(m["content"]) or m["role"] == "user" for m in sent)
    assert not any(m["role"] == "assistant" and "A person will" in m["content"] for m in sent)
    audit = (await admin.http.get("/v1/admin/audit", params={"action": "handoff.released"})).json()
    assert any(e["target_id"] == session_id for e in audit["data"])


async def test_replies_need_a_live_handoff_and_content(
    desk: Desk, user: Caller, admin: Caller
) -> None:
    unknown = await admin.http.post(
        f"/v1/admin/handoffs/{uuid.uuid4()}/reply", json={"content": "hello"}
    )
    assert_error(unknown, 404, "handoff_not_found")
    bad_id = await admin.http.post("/v1/admin/handoffs/not-a-uuid/release")
    assert bad_id.status_code in (400, 422), bad_id.text
    session_id = await handed_off(user)
    blank = await admin.http.post(f"/v1/admin/handoffs/{session_id}/reply", json={"content": " "})
    assert_error(blank, 400, "empty_content")
    await admin.http.post(f"/v1/admin/handoffs/{session_id}/release")
    late = await admin.http.post(f"/v1/admin/handoffs/{session_id}/reply", json={"content": "hi"})
    assert_error(late, 409, "handoff_released")
    bad_filter = await admin.http.get("/v1/admin/handoffs", params={"status": "lost"})
    assert bad_filter.status_code == 422, bad_filter.text


async def test_the_policy_is_set_and_cleared_through_the_admin_api(
    desk: Desk, admin: Caller
) -> None:
    assistant_id = f"h-{uuid.uuid4().hex[:8]}"
    created = await admin.http.post(
        "/v1/admin/assistants",
        json={"id": assistant_id, "name": "Policy", "provider": "double", "model": "m"},
    )
    assert created.status_code == 201 and created.json()["handoff"] is None, created.text
    path = f"/v1/admin/assistants/{assistant_id}"
    policy = {"on_request": True, "on_guard_blocks": 3, "webhook_url": "https://hooks.example/h"}
    changed = await admin.http.patch(path, json={"handoff": policy})
    assert changed.status_code == 200, changed.text
    assert changed.json()["handoff"]["on_guard_blocks"] == 3
    assert changed.json()["handoff"]["on_engine_failure"] is False
    assert changed.json()["handoff"]["message"]  # the bilingual default
    refused = await admin.http.patch(path, json={"handoff": {"on_guard_blocks": 0}})
    assert refused.status_code == 422, refused.text
    not_a_url = await admin.http.patch(path, json={"handoff": {"webhook_url": "ftp://x"}})
    assert not_a_url.status_code == 422, not_a_url.text
    cleared = await admin.http.patch(path, json={"handoff": None})
    assert cleared.status_code == 200 and cleared.json()["handoff"] is None


async def test_erasing_the_user_erases_their_handoffs(desk: Desk, admin: Caller) -> None:
    async with open_caller(desk.url) as leaving:
        session_id = await handed_off(leaving)
        assert await listed(admin, session_id) is not None
        assert (await leaving.http.delete("/v1/me")).status_code == 204
    assert await listed(admin, session_id) is None
