"""Knowledge bases through the admin API, on SQLite and PostgreSQL: create, read, change,
delete; admins only; audited."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import Caller, Gateway, assert_error, make_token
from tests.knowledge.helpers import KB, new_kb, upload


@pytest.fixture
async def admin(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {make_token('kb-admin', admin=True)}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=60) as client:
        yield client


async def test_a_knowledge_base_is_created_read_changed_and_deleted(
    admin: httpx.AsyncClient,
) -> None:
    kb = await new_kb(admin, description="How to")
    assert kb["chunk_size"] == 500 and kb["chunk_overlap"] == 50 and kb["top_k"] == 5
    # The bundled embedder's own threshold: its cosines are high for unrelated text too.
    assert kb["score_threshold"] == 0.82 and kb["document_count"] == 0
    assert kb["parent_chunk_size"] is None
    # The embedder and its dimension are recorded at creation: the bundled model by default.
    assert kb["embedder"] == "local:multilingual-e5-small" and kb["dimension"] == 384

    assert_error(await admin.post(KB, json={"id": kb["id"], "name": "again"}), 409, "kb_exists")
    assert (await admin.get(f"{KB}/{kb['id']}")).json() == kb
    assert kb["id"] in {k["id"] for k in (await admin.get(KB)).json()["data"]}

    changed = await admin.patch(
        f"{KB}/{kb['id']}", json={"top_k": 3, "score_threshold": 0.4, "parent_chunk_size": 1500}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["top_k"] == 3 and changed.json()["score_threshold"] == 0.4
    assert changed.json()["parent_chunk_size"] == 1500

    deleted = await admin.delete(f"{KB}/{kb['id']}")
    assert deleted.status_code == 204
    assert_error(await admin.get(f"{KB}/{kb['id']}"), 404, "kb_not_found")
    assert_error(await admin.delete(f"{KB}/{kb['id']}"), 404, "kb_not_found")

    for action in ("knowledge_base.created", "knowledge_base.updated", "knowledge_base.deleted"):
        audit = (await admin.get("/v1/admin/audit", params={"action": action})).json()
        assert any(e["target_id"] == kb["id"] for e in audit["data"]), action


async def test_bad_sizes_and_unknown_embedders_are_refused(admin: httpx.AsyncClient) -> None:
    kb = await new_kb(admin, chunk_size=200)
    assert kb["chunk_overlap"] == 20  # the default's share of a smaller size
    assert_error(
        await admin.patch(f"{KB}/{kb['id']}", json={"chunk_overlap": 200}),
        422, "invalid_knowledge_base",
    )  # fmt: skip
    assert_error(
        await admin.patch(f"{KB}/{kb['id']}", json={"parent_chunk_size": 100}),
        422, "invalid_knowledge_base",
    )  # fmt: skip
    assert_error(await admin.patch(f"{KB}/{kb['id']}", json={"top_k": None}), 422,
                 "validation_error")  # fmt: skip
    refused = await admin.post(KB, json={"id": "x-overlap", "name": "x", "chunk_size": 100,
                                         "chunk_overlap": 100})  # fmt: skip
    assert_error(refused, 422, "invalid_knowledge_base")
    assert_error(await admin.post(KB, json={"id": "Bad Id", "name": "x"}), 422, "validation_error")
    unknown = await admin.post(KB, json={"id": "x-embedder", "name": "x", "embedder": "nope"})
    assert_error(unknown, 400, "unknown_embedder")
    assert_error(await admin.patch(f"{KB}/missing-kb", json={"top_k": 2}), 404, "kb_not_found")
    # PostgreSQL cannot store NUL in text: refused as input, never a failed write (a 500).
    for field in ("name", "description"):
        nul = await admin.post(KB, json={"id": f"x-nul-{field}", "name": "x", field: "a\x00b"})
        assert_error(nul, 422, "validation_error")
    assert_error(await admin.patch(f"{KB}/{kb['id']}", json={"description": "\x00"}), 422,
                 "validation_error")  # fmt: skip


async def test_only_admins_reach_knowledge_bases(alice: Caller, admin: httpx.AsyncClient) -> None:
    kb = await new_kb(admin)
    for method, path in [("GET", KB), ("POST", KB), ("GET", f"{KB}/{kb['id']}"),
                         ("PATCH", f"{KB}/{kb['id']}"), ("DELETE", f"{KB}/{kb['id']}"),
                         ("GET", f"{KB}/{kb['id']}/documents")]:  # fmt: skip
        response = await alice.http.request(method, path, json={})
        assert_error(response, 403, "admin_required")
    assert_error(await upload(alice.http, kb["id"], "a.txt", b"hello"), 403, "admin_required")
    assert (await admin.get(f"{KB}/{kb['id']}/documents")).json() == {"data": []}


async def test_an_assistant_names_its_knowledge_bases(admin: httpx.AsyncClient) -> None:
    kb = await new_kb(admin)
    changed = await admin.patch("/v1/admin/assistants/support",
                                json={"knowledge_bases": [kb["id"]]})  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert changed.json()["knowledge_bases"] == [kb["id"]]
    assert (await admin.get("/v1/admin/assistants/support")).json()["knowledge_bases"] == [kb["id"]]
    assert (await admin.get("/v1/admin/assistants/echo")).json()["knowledge_bases"] == []
    bad = await admin.patch("/v1/admin/assistants/support", json={"knowledge_bases": ["Not An Id"]})
    assert_error(bad, 422, "validation_error")
    await admin.patch("/v1/admin/assistants/support", json={"knowledge_bases": []})
