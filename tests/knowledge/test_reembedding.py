"""A knowledge base that changes its embedder embeds every document again, on SQLite and
PostgreSQL: the bundled model, then an OpenAI-compatible service (the double, over real HTTP),
then back; searches use the new vectors; the old ones are gone at once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from chatgate.core.config import EmbedderConfig
from tests.conftest import Double, Gateway, make_token, settings_for
from tests.knowledge.helpers import KB, new_kb, settled, upload
from tests.runner import run_chatgate

WARRANTY = "The warranty of the X-7731 router lasts two years from the day of purchase."
RETURNS = "Returns are accepted within thirty days when the box is unopened."


@pytest.fixture
def two_embedders(database_url: str, openai_double: Double) -> Iterator[Gateway]:
    remote = EmbedderConfig(
        id="remote", type="openai", base_url=f"{openai_double.url}/v1",
        api_key_env="DOUBLE_API_KEY", model="text-embedding-3-small",
    )  # fmt: skip
    embedders = [EmbedderConfig(id="bundled", type="local"), remote]
    settings = settings_for(database_url, openai_double.url, embedders=embedders)
    with run_chatgate(settings) as url:
        yield Gateway(url=url, settings=settings, double=openai_double)


@pytest.fixture
async def admin(two_embedders: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {make_token('kb-admin', admin=True)}"}
    async with httpx.AsyncClient(base_url=two_embedders.url, headers=headers, timeout=60) as c:
        yield c


async def _search(admin: httpx.AsyncClient, kb_id: str, query: str) -> list[dict[str, object]]:
    body = {"query": query, "mode": "vector"}
    response = await admin.post(f"{KB}/{kb_id}/search", json=body)
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def test_changing_the_embedder_embeds_every_document_again(
    admin: httpx.AsyncClient, openai_double: Double
) -> None:
    kb = await new_kb(admin, chunk_size=32, chunk_overlap=0)
    assert kb["embedder"] == "local:multilingual-e5-small" and kb["dimension"] == 384
    document = (await upload(admin, kb["id"], "terms.md", f"{WARRANTY}\n\n{RETURNS}")).json()
    assert (await settled(admin, kb["id"], document["id"]))["status"] == "ready"
    sent = len(openai_double.api.embedding_requests)

    changed = await admin.patch(f"{KB}/{kb['id']}", json={"embedder": "remote"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["embedder"] == "openai:remote:text-embedding-3-small"
    # The new model's own threshold (0 for a service whose scores chatgate cannot know).
    assert changed.json()["score_threshold"] == 0.0
    after = await settled(admin, kb["id"], document["id"])
    assert after["status"] == "ready" and after["chunk_count"] == 2, after
    kb_now = (await admin.get(f"{KB}/{kb['id']}")).json()
    assert kb_now["dimension"] == openai_double.api.embedding_dimension
    embedded = [t for r in openai_double.api.embedding_requests[sent:] for t in r["input"]]
    assert WARRANTY in embedded and RETURNS in embedded
    # The question's vector comes from the service too: the passage's own text scores 1.
    found = await _search(admin, kb["id"], RETURNS)
    assert found[0]["text"] == RETURNS and found[0]["score"] == pytest.approx(1.0, abs=1e-3)

    back = await admin.patch(f"{KB}/{kb['id']}", json={"embedder": "bundled"})
    assert back.json()["embedder"] == "local:multilingual-e5-small"
    assert back.json()["score_threshold"] == 0.82
    assert (await settled(admin, kb["id"], document["id"]))["status"] == "ready"
    assert (await admin.get(f"{KB}/{kb['id']}")).json()["dimension"] == 384
    found = await _search(admin, kb["id"], "How long is the router covered?")
    assert found[0]["text"] == WARRANTY

    audit = await admin.get("/v1/admin/audit", params={"action": "knowledge_base.updated"})
    changes = [e["details"]["changes"] for e in audit.json()["data"] if e["target_id"] == kb["id"]]
    assert {
        "from": "local:multilingual-e5-small",
        "to": "openai:remote:text-embedding-3-small",
    } in [c.get("embedder") for c in changes]


async def test_an_unknown_embedder_is_refused_and_changes_nothing(
    admin: httpx.AsyncClient,
) -> None:
    kb = await new_kb(admin)
    refused = await admin.patch(f"{KB}/{kb['id']}", json={"embedder": "nope"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "unknown_embedder"
    assert (await admin.get(f"{KB}/{kb['id']}")).json()["embedder"] == kb["embedder"]
