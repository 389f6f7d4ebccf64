"""Every saved change of an assistant is a version: listed newest first, each with the whole
configuration as it was; a rollback saves an old one again as a new version, audited."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
from sqlalchemy import select

from chatgate.assistants.models import AssistantVersionRow
from chatgate.assistants.service import AssistantCatalog
from chatgate.core.config import AssistantConfig
from chatgate.core.db import Database
from chatgate.core.migrate import upgrade_database
from tests.assistants.test_admin import new_spec
from tests.conftest import Caller, Gateway, assert_error, read_database

# Every configuration field of an assistant but its id, and whether it is on.
VERSIONED = {*AssistantConfig.model_fields, "enabled"} - {"id"}


async def create(operator: Caller, **changes: object) -> dict[str, Any]:
    created = await operator.http.post("/v1/admin/assistants", json=new_spec(**changes))
    assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


async def versions(operator: Caller, assistant_id: str) -> list[dict[str, Any]]:
    listed = await operator.http.get(f"/v1/admin/assistants/{assistant_id}/versions")
    assert listed.status_code == 200, listed.text
    return listed.json()["data"]  # type: ignore[no-any-return]


def config_of(assistant: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in assistant.items() if k in VERSIONED}


async def test_create_change_and_disable_each_write_a_version(operator: Caller) -> None:
    created = await create(operator)
    path = f"/v1/admin/assistants/{created['id']}"
    [first] = await versions(operator, created["id"])
    assert first["version"] == 1 and first["user_id"] == operator.user_id
    assert set(first["config"]) == VERSIONED
    assert first["config"] == config_of(created) and first["config"]["enabled"] is True

    changed = (await operator.http.patch(path, json={"system_prompt": "Refunds, v2."})).json()
    # The same value again changes nothing: no version.
    same = (await operator.http.patch(path, json={"system_prompt": "Refunds, v2."})).json()
    assert changed["version"] == same["version"] == 2
    disabled = (await operator.http.delete(path)).json()
    assert disabled["version"] == 3

    listed = await versions(operator, created["id"])
    assert [v["version"] for v in listed] == [3, 2, 1]
    assert [v["config"]["system_prompt"] for v in listed] == [
        "Refunds, v2.", "Refunds, v2.", "You handle refunds.",
    ]  # fmt: skip
    assert listed[0]["config"] == config_of(disabled) and listed[0]["config"]["enabled"] is False
    assert listed[1]["config"] == config_of(changed)
    assert listed[0]["created_at"] >= listed[1]["created_at"] >= listed[2]["created_at"]


async def test_a_rollback_saves_the_old_configuration_as_a_new_version(
    operator: Caller, alice: Caller, gateway: Gateway
) -> None:
    created = await create(operator, temperature=0.2, guards={"pii": "off", "injection": "off"})
    path = f"/v1/admin/assistants/{created['id']}"
    changes = {
        "system_prompt": "A changed prompt.", "temperature": 1.5, "fallback_answer": "Busy.",
        "guards": {"pii": "mask", "injection": "flag"}, "max_answer_tokens": 300,
    }  # fmt: skip
    assert (await operator.http.patch(path, json=changes)).json()["version"] == 2
    assert (await operator.http.delete(path)).json()["enabled"] is False

    rolled = await operator.http.post(f"{path}/rollback", json={"version": 1})
    assert rolled.status_code == 200, rolled.text
    restored = rolled.json()
    assert restored["version"] == 4 and restored["enabled"] is True
    assert config_of(restored) == config_of(created)
    assert config_of((await operator.http.get(path)).json()) == config_of(created)
    listed = await versions(operator, created["id"])
    assert [v["version"] for v in listed] == [4, 3, 2, 1]
    assert listed[0]["config"] == listed[3]["config"] and listed[0]["user_id"] == operator.user_id

    # The next turn is the old version's (on again, its prompt).
    session = await alice.new_session(created["id"])
    answer = await alice.http.post(f"/v1/sessions/{session['id']}/messages", json={"content": "hi"})
    assert answer.status_code == 200, answer.text
    assert gateway.double.api.requests[-1]["messages"][0]["content"] == "You handle refunds."

    audit = await operator.http.get(
        "/v1/admin/audit", params={"action": "assistant.rolled_back", "user_id": operator.user_id}
    )
    [event] = audit.json()["data"]
    assert event["target_id"] == created["id"]
    assert event["details"] == {"from": 3, "to": 1, "version": 4}

    # Rolling back to the version that is live still saves a version: it was asked for.
    again = await operator.http.post(f"{path}/rollback", json={"version": 4})
    assert again.json()["version"] == 5 and config_of(again.json()) == config_of(created)


async def test_missing_assistants_and_versions_are_404(operator: Caller) -> None:
    created = await create(operator)
    missing = f"nobody-{secrets.token_hex(3)}"
    assert_error(
        await operator.http.get(f"/v1/admin/assistants/{missing}/versions"),
        404, "assistant_not_found",
    )  # fmt: skip
    assert_error(
        await operator.http.post(f"/v1/admin/assistants/{missing}/rollback", json={"version": 1}),
        404, "assistant_not_found",
    )  # fmt: skip
    path = f"/v1/admin/assistants/{created['id']}/rollback"
    assert_error(await operator.http.post(path, json={"version": 7}), 404, "version_not_found")
    for body in ({"version": 0}, {"version": "one"}, {}):
        assert_error(await operator.http.post(path, json=body), 422, "validation_error")
    assert [v["version"] for v in await versions(operator, created["id"])] == [1]


async def test_only_admins_see_versions_roll_back_or_try(operator: Caller, alice: Caller) -> None:
    created = await create(operator)
    path = f"/v1/admin/assistants/{created['id']}"
    for method, suffix, body in [
        ("GET", "/versions", None),
        ("POST", "/rollback", {"version": 1}),
        ("POST", "/try", {"question": "hi", "draft": {}}),
    ]:
        refused = await alice.http.request(method, path + suffix, json=body)
        assert_error(refused, 403, "admin_required")
    async with httpx.AsyncClient(base_url=str(alice.http.base_url)) as nobody:
        assert (await nobody.get(f"{path}/versions")).status_code == 401
    assert [v["version"] for v in await versions(operator, created["id"])] == [1]


async def test_seeding_writes_version_one_once_with_several_workers(database_url: str) -> None:
    await asyncio.to_thread(upgrade_database, database_url)
    tag = secrets.token_hex(3)
    configs = [
        AssistantConfig(id=f"seeded-{tag}-{n}", name=f"Seeded {n}", provider="local", model="m",
                        system_prompt=f"Prompt {n}.")
        for n in range(3)
    ]  # fmt: skip
    databases = [Database(database_url) for _ in range(4)]
    catalogs = [
        AssistantCatalog(database=db, redis=None, provider_ids={"local"}) for db in databases
    ]
    try:
        await asyncio.gather(*(catalog.seed(configs) for catalog in catalogs))
        await asyncio.gather(*(catalog.seed(configs) for catalog in catalogs))
    finally:
        for db in databases:
            await db.close()
    async with read_database(database_url) as db:
        query = select(AssistantVersionRow).where(
            AssistantVersionRow.assistant_id.in_([c.id for c in configs])
        )
        rows = (await db.scalars(query)).all()
    assert sorted((r.assistant_id, r.version) for r in rows) == [(c.id, 1) for c in configs]
    by_id = {r.assistant_id: r for r in rows}
    for config in configs:
        seeded = by_id[config.id]
        assert seeded.config == {**config.model_dump(exclude={"id"}), "enabled": True}
        assert seeded.user_id is None


async def test_changes_at_once_each_get_a_version_of_their_own(operator: Caller) -> None:
    created = await create(operator)
    path = f"/v1/admin/assistants/{created['id']}"
    prompts = [f"Prompt {n}." for n in range(6)]
    changed = await asyncio.gather(
        *(operator.http.patch(path, json={"system_prompt": p}) for p in prompts)
    )
    assert [r.status_code for r in changed] == [200] * len(prompts), [r.text for r in changed]
    assert sorted(r.json()["version"] for r in changed) == list(range(2, 2 + len(prompts)))
    listed = await versions(operator, created["id"])
    assert [v["version"] for v in listed] == list(range(1 + len(prompts), 0, -1))
    current = (await operator.http.get(path)).json()
    assert listed[0]["config"] == config_of(current)
    # Each version holds the prompt of the change that made it.
    by_version = {r.json()["version"]: r.json()["system_prompt"] for r in changed}
    assert {v["version"]: v["config"]["system_prompt"] for v in listed[:-1]} == by_version
