"""Live assistants: admins create, change and disable them; every process sees it next request."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest

from chatgate.core.config import Settings
from tests.conftest import Caller, Double, Gateway, make_token, settings_for
from tests.runner import run_chatgate

NEW = {
    "id": "", "name": "Refunds", "provider": "double", "model": "double-refunds",
    "system_prompt": "You handle refunds.", "max_context_tokens": 4000, "max_answer_tokens": 100,
}  # fmt: skip


@pytest.fixture
async def admin(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {make_token('root-admin', admin=True)}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=30) as client:
        yield client


def new_spec(**changes: object) -> dict[str, object]:
    return {**NEW, "id": f"refunds-{secrets.token_hex(3)}", **changes}


async def ask(caller: Caller, assistant_id: str, text: str) -> httpx.Response:
    session = await caller.new_session(assistant_id)
    return await caller.http.post(f"/v1/sessions/{session['id']}/messages", json={"content": text})


async def test_only_admins_reach_admin_endpoints(alice: Caller) -> None:
    for method, path in [("GET", "/v1/admin/assistants"), ("POST", "/v1/admin/assistants"),
                         ("PATCH", "/v1/admin/assistants/echo")]:  # fmt: skip
        response = await alice.http.request(method, path, json={})
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "admin_required"


async def test_create_change_and_disable(
    admin: httpx.AsyncClient, alice: Caller, gateway: Gateway
) -> None:
    spec = new_spec()
    created = await admin.post("/v1/admin/assistants", json=spec)
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1 and created.json()["enabled"] is True
    listed = {a["id"] for a in (await alice.http.get("/v1/assistants")).json()["data"]}
    assert spec["id"] in listed

    assert (await ask(alice, str(spec["id"]), "hi")).status_code == 200
    assert gateway.double.api.requests[-1]["messages"][0]["content"] == "You handle refunds."

    changed = await admin.patch(
        f"/v1/admin/assistants/{spec['id']}", json={"system_prompt": "Refunds, v2.", "model": "m2"}
    )
    assert changed.json()["version"] == 2
    assert (await ask(alice, str(spec["id"]), "again")).status_code == 200
    sent = gateway.double.api.requests[-1]
    assert sent["messages"][0]["content"] == "Refunds, v2." and sent["model"] == "m2"

    disabled = await admin.delete(f"/v1/admin/assistants/{spec['id']}")
    assert disabled.json()["enabled"] is False and disabled.json()["version"] == 3
    listed = {a["id"] for a in (await alice.http.get("/v1/assistants")).json()["data"]}
    assert spec["id"] not in listed
    refused = await alice.http.post("/v1/sessions", json={"assistant_id": spec["id"]})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "assistant_disabled"
    still_there = await admin.get(f"/v1/admin/assistants/{spec['id']}")
    assert still_there.json()["enabled"] is False

    audit = (await admin.get("/v1/admin/audit", params={"action": "assistant.updated"})).json()
    assert any(e["target_id"] == spec["id"] for e in audit["data"])


async def test_bad_assistant_specs_are_refused(admin: httpx.AsyncClient) -> None:
    unknown = await admin.post("/v1/admin/assistants", json=new_spec(provider="nowhere"))
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_provider"
    too_big = await admin.post("/v1/admin/assistants", json=new_spec(max_answer_tokens=5000))
    assert too_big.status_code == 422
    duplicate = await admin.post("/v1/admin/assistants", json=new_spec(id="echo"))
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "assistant_exists"
    bad_change = await admin.patch("/v1/admin/assistants/echo", json={"max_answer_tokens": 9000})
    assert bad_change.status_code == 422
    assert bad_change.json()["error"]["code"] == "invalid_assistant"
    missing = await admin.patch("/v1/admin/assistants/nope", json={"name": "x"})
    assert missing.status_code == 404


async def test_a_change_reaches_every_process_through_redis(
    database_url: str, openai_double: Double
) -> None:
    settings: Settings = settings_for(
        database_url, openai_double.url, redis_url="redis://127.0.0.1:6379/0"
    )
    admin_headers = {"Authorization": f"Bearer {make_token('root', admin=True)}"}
    user_headers = {"Authorization": f"Bearer {make_token('multi-user')}"}
    with run_chatgate(settings) as first, run_chatgate(settings) as second:
        async with (
            httpx.AsyncClient(base_url=first, headers=admin_headers) as on_first,
            httpx.AsyncClient(base_url=second, headers=user_headers) as on_second,
        ):
            spec = new_spec()
            assert (await on_first.post("/v1/admin/assistants", json=spec)).status_code == 201
            session = (
                await on_second.post("/v1/sessions", json={"assistant_id": spec["id"]})
            ).json()
            for prompt in ("first prompt", "second prompt", "third prompt"):
                await on_first.patch(
                    f"/v1/admin/assistants/{spec['id']}", json={"system_prompt": prompt}
                )
                reply = await on_second.post(
                    f"/v1/sessions/{session['id']}/messages", json={"content": "which prompt?"}
                )
                assert reply.status_code == 200
                assert openai_double.api.requests[-1]["messages"][0]["content"] == prompt


async def test_yaml_seeds_do_not_undo_admin_edits(database_url: str, openai_double: Double) -> None:
    settings = settings_for(database_url, openai_double.url)
    headers = {"Authorization": f"Bearer {make_token('root', admin=True)}"}
    with run_chatgate(settings) as url:
        async with httpx.AsyncClient(base_url=url, headers=headers) as client:
            await client.patch("/v1/admin/assistants/support", json={"name": "Support (edited)"})
    with run_chatgate(settings) as url:
        async with httpx.AsyncClient(base_url=url, headers=headers) as client:
            assert (await client.get("/v1/admin/assistants/support")).json()[
                "name"
            ] == "Support (edited)"
            await client.patch("/v1/admin/assistants/support", json={"name": "Support"})
