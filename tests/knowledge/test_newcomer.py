"""The README's "Answer from your own documents", as a newcomer does it, on SQLite and
PostgreSQL: a PDF manual uploaded as a multipart file, the bundled model (SmolLM2 through
llama.cpp) and the bundled embedder asked in English and Chinese, each answer citing the page
that answers it; a question the manual does not cover cites nothing; a deleted manual is gone
from the next answer."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway, make_token
from tests.knowledge.helpers import KB, new_kb, pdf_bytes, settled, upload

MANUAL = [
    "Returns.\n\nUnopened items can be returned within thirty days for a full refund. Bring the "
    "receipt to any of our shops.",
    "Warranty.\n\nThe Aurora 5 coffee grinder has a warranty of two years. Repairs under the "
    "warranty are free of charge.",
    "充电。\n\n极光五号磨豆机的电池充满电需要大约四个小时，充满后指示灯会变成绿色。",
]


@pytest.fixture
async def admin(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {make_token('newcomer', admin=True)}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=120) as client:
        yield client


async def ask(admin: httpx.AsyncClient, assistant_id: str, question: str) -> dict[str, Any]:
    body = {"question": question, "assistant_id": assistant_id}
    response = await admin.post("/v1/qa", json=body)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_a_pdf_manual_answers_in_english_and_chinese_citing_its_pages(
    admin: httpx.AsyncClient,
) -> None:
    kb = await new_kb(admin, name="Product manual")
    uploaded = await upload(admin, kb["id"], "manual.pdf", pdf_bytes(MANUAL), "application/pdf")
    assert uploaded.status_code == 202, uploaded.text
    document = await settled(admin, kb["id"], uploaded.json()["id"])
    assert document["status"] == "ready" and document["page_count"] == 3, document
    assistant_id = f"manual-{secrets.token_hex(3)}"
    spec = {
        "id": assistant_id, "name": "Manual", "provider": "local",
        "model": "smollm2-135m-instruct", "system_prompt": "Answer from the manual.",
        "max_context_tokens": 1024, "max_answer_tokens": 24, "temperature": 0.0,
        "knowledge_bases": [kb["id"]],
    }  # fmt: skip
    assert (await admin.post("/v1/admin/assistants", json=spec)).status_code == 201

    english = await ask(admin, assistant_id, "How long is the Aurora 5 grinder's warranty?")
    assert english["answer"].strip()
    assert english["citations"][0]["page"] == 2, english["citations"]
    assert english["citations"][0]["document_name"] == "manual.pdf"
    assert "two years" in english["citations"][0]["text"]

    chinese = await ask(admin, assistant_id, "磨豆机充电要多久？")
    assert chinese["answer"].strip()
    assert chinese["citations"][0]["page"] == 3, chinese["citations"]
    assert "四个小时" in chinese["citations"][0]["text"]

    uncovered = await ask(admin, assistant_id, "Who painted the Mona Lisa?")
    assert uncovered["citations"] == []

    deleted = await admin.delete(f"{KB}/{kb['id']}/documents/{document['id']}")
    assert deleted.status_code == 204
    after = await ask(admin, assistant_id, "How long is the Aurora 5 grinder's warranty?")
    assert after["citations"] == []
