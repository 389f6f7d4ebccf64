"""The audit log's query: a `since` without a time zone is refused (422), not a 500; with one,
in any zone, it filters."""

from __future__ import annotations

import uuid

from tests.conftest import Caller, Gateway, assert_error, make_token, open_caller


async def test_since_needs_a_time_zone(gateway: Gateway) -> None:
    admin = f"admin-{uuid.uuid4().hex[:8]}"
    async with open_caller(gateway.url, admin, token=make_token(admin, admin=True)) as caller:
        for naive in ("2024-01-01T00:00:00", "2024-01-01 08:30", "2024-01-01"):
            response = await caller.http.get("/v1/admin/audit", params={"since": naive})
            assert_error(response, 422, "validation_error")
        for aware in ("2024-01-01T00:00:00Z", "2024-01-01T08:00:00+08:00", "2024-01-01T00:00Z"):
            response = await caller.http.get("/v1/admin/audit", params={"since": aware})
            assert response.status_code == 200, (aware, response.text)


async def test_since_filters_in_any_zone(gateway: Gateway, alice: Caller) -> None:
    session = await alice.new_session("echo")
    assert (await alice.http.delete(f"/v1/sessions/{session['id']}")).status_code == 204
    admin = f"admin-{uuid.uuid4().hex[:8]}"
    async with open_caller(gateway.url, admin, token=make_token(admin, admin=True)) as caller:
        params = {"user_id": alice.user_id, "action": "session.deleted"}
        past = await caller.http.get(
            "/v1/admin/audit", params={**params, "since": "2000-01-01T08:00:00+08:00"}
        )
        future = await caller.http.get(
            "/v1/admin/audit", params={**params, "since": "2999-01-01T00:00:00-05:00"}
        )
    assert [e["target_id"] for e in past.json()["data"]] == [session["id"]]
    assert future.json()["data"] == []
