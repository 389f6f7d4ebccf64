"""Documents over real HTTP on SQLite and PostgreSQL: each format parsed and indexed with the
bundled embedder, duplicates, failures that leave no chunk, deletes that take the chunks."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select

from chatgate.knowledge.models import ChunkRow, DocumentRow
from tests.conftest import Gateway, assert_error, make_token, read_database
from tests.knowledge.helpers import KB, docx_bytes, new_kb, pdf_bytes, settled, upload

CHINESE = "退货政策。\n\n商品签收后七天内可以申请退货，运费由买家承担。退款将在三个工作日内到账。"
HTML = (
    "<html><head><title>FAQ</title><style>p{color:red}</style><script>var x=1;</script></head>"
    "<body><h1>Shipping</h1><p>Orders ship <b>within two days</b>.</p><ul><li>Express: one day."
    "</li></ul><table><tr><td>Zone</td><td>Days</td></tr></table></body></html>"
)
FORMATS = {
    "pdf": ("manual.pdf", pdf_bytes(["The warranty lasts two years.", "Returns take a week."])),
    "docx": ("rules.docx", docx_bytes(["Leave needs approval.", "Overtime is paid."],
                                      [["Grade", "Days"], ["A", "20"]])),
    "markdown": ("guide.md", b"# Setup\n\nInstall the app.\nThen sign in.\n\n## Next\n\nEnjoy."),
    "html": ("faq.html", HTML.encode()),
    "chinese-gb18030": ("退货.txt", CHINESE.encode("gb18030")),
}  # fmt: skip


@pytest.fixture
async def admin(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {make_token('kb-admin', admin=True)}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=60) as client:
        yield client


async def chunks_of(database_url: str, document_id: str) -> list[ChunkRow]:
    async with read_database(database_url) as db:
        rows = await db.scalars(
            select(ChunkRow)
            .where(ChunkRow.document_id == uuid.UUID(document_id))
            .order_by(ChunkRow.ordinal)
        )
        return list(rows.all())


@pytest.mark.parametrize("kind", list(FORMATS))
async def test_each_format_is_parsed_chunked_and_embedded(
    kind: str, admin: httpx.AsyncClient, gateway: Gateway
) -> None:
    kb = await new_kb(admin, chunk_size=64)
    name, content = FORMATS[kind]
    response = await upload(admin, kb["id"], name, content)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "processing" and accepted["name"] == name
    assert accepted["size"] == len(content) and accepted["chunk_count"] == 0

    document = await settled(admin, kb["id"], accepted["id"])
    assert document["status"] == "ready", document
    assert document["progress"] == 1 and document["error"] is None
    chunks = await chunks_of(gateway.settings.database_url, accepted["id"])
    assert document["chunk_count"] == len(chunks) > 0
    text = "\n".join(c.text for c in chunks)
    for chunk in chunks:
        vector = np.frombuffer(chunk.embedding, dtype="<f4")
        assert vector.shape == (384,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-3
        assert 0 < chunk.token_count <= 64 and chunk.search_text
    if kind == "pdf":
        assert document["page_count"] == 2
        assert [(c.page, c.text) for c in chunks] == [
            (1, "The warranty lasts two years."), (2, "Returns take a week."),
        ]  # fmt: skip
    else:
        assert document["page_count"] is None and all(c.page is None for c in chunks)
    if kind == "docx":
        assert "Leave needs approval." in text and "A | 20" in text
    if kind == "html":
        assert "Orders ship within two days." in text and "var x" not in text
        assert "color" not in text and "FAQ" not in text
    if kind == "markdown":
        assert "Install the app. Then sign in." in text
    if kind == "chinese-gb18030":
        assert "商品签收后七天内可以申请退货，运费由买家承担。" in text
        assert "退货 政策" in chunks[0].search_text  # segmented for the keyword index
    listed = (await admin.get(f"{KB}/{kb['id']}/documents")).json()["data"]
    assert [d["id"] for d in listed] == [accepted["id"]]
    assert (await admin.get(f"{KB}/{kb['id']}")).json()["document_count"] == 1


async def test_the_same_file_twice_is_the_same_document(admin: httpx.AsyncClient) -> None:
    kb = await new_kb(admin)
    first = await upload(admin, kb["id"], "a.md", b"Same bytes. Twice.")
    assert first.status_code == 202
    again = await upload(admin, kb["id"], "renamed.md", b"Same bytes. Twice.")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"] and again.json()["name"] == "a.md"
    await settled(admin, kb["id"], first.json()["id"])
    other_kb = await new_kb(admin)
    elsewhere = await upload(admin, other_kb["id"], "a.md", b"Same bytes. Twice.")
    assert elsewhere.status_code == 202  # another knowledge base has its own copy
    await settled(admin, other_kb["id"], elsewhere.json()["id"])


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage", "parse_failed"),
        ("broken.docx", b"PK\x03\x04 not really a zip", "parse_failed"),
        ("empty.txt", b"", "empty_document"),
        ("blank.md", b"  \n\n \t\n", "empty_document"),
        ("blank.pdf", pdf_bytes([""]), "empty_document"),
        ("locked.pdf", pdf_bytes(["Secret terms."], password="s3cret"), "encrypted_document"),
    ],
)
async def test_a_document_that_cannot_be_read_fails_with_no_chunks(
    name: str, content: bytes, code: str, admin: httpx.AsyncClient, gateway: Gateway
) -> None:
    kb = await new_kb(admin)
    response = await upload(admin, kb["id"], name, content)
    assert response.status_code == 202, response.text
    document = await settled(admin, kb["id"], response.json()["id"])
    assert document["status"] == "failed", document
    assert document["error"]["code"] == code and document["error"]["message"]
    assert document["chunk_count"] == 0
    assert await chunks_of(gateway.settings.database_url, document["id"]) == []
    # Uploading the same bytes again retries: a new document replaces the failed one.
    retried = await upload(admin, kb["id"], name, content)
    assert retried.status_code == 202 and retried.json()["id"] != document["id"]
    await settled(admin, kb["id"], retried.json()["id"])


async def test_unsupported_types_and_unknown_ids_are_refused(admin: httpx.AsyncClient) -> None:
    kb = await new_kb(admin)
    refused = await upload(admin, kb["id"], "photo.png", b"\x89PNG\r\n", "image/png")
    assert_error(refused, 415, "unsupported_document_type")
    assert_error(await upload(admin, "no-such-kb", "a.txt", b"hi"), 404, "kb_not_found")
    missing = f"{KB}/{kb['id']}/documents/{uuid.uuid4()}"
    assert_error(await admin.get(missing), 404, "document_not_found")
    assert_error(await admin.delete(missing), 404, "document_not_found")
    assert_error(await admin.get(f"{KB}/no-such-kb/documents"), 404, "kb_not_found")
    # A declared type is enough when the name has no known suffix.
    typed = await upload(admin, kb["id"], "notes", b"Plain words.", "text/plain")
    assert typed.status_code == 202, typed.text
    await settled(admin, kb["id"], typed.json()["id"])


async def test_an_odd_file_name_is_stored_as_its_printable_last_part(
    admin: httpx.AsyncClient,
) -> None:
    kb = await new_kb(admin)
    # By hand: httpx would percent-encode the control characters in the name.
    body = (
        b'--b0undary\r\nContent-Disposition: form-data; name="file"; '
        b'filename="../dir\\sub/a\x00b\x07.md"\r\nContent-Type: text/markdown\r\n\r\n'
        b"Named. Oddly.\r\n--b0undary--\r\n"
    )
    response = await admin.post(
        f"{KB}/{kb['id']}/documents", content=body,
        headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
    )  # fmt: skip
    assert response.status_code == 202, response.text
    assert response.json()["name"] == "ab.md"
    await settled(admin, kb["id"], response.json()["id"])


async def test_deleting_a_document_or_a_knowledge_base_deletes_its_chunks(
    admin: httpx.AsyncClient, gateway: Gateway
) -> None:
    url = gateway.settings.database_url
    kb = await new_kb(admin, chunk_size=32)
    ids = []
    for i in range(2):
        response = await upload(admin, kb["id"], f"d{i}.md", f"Doc {i}. Some text.".encode())
        ids.append(response.json()["id"])
        assert (await settled(admin, kb["id"], ids[-1]))["status"] == "ready"
    assert all([await chunks_of(url, d) for d in ids])

    assert (await admin.delete(f"{KB}/{kb['id']}/documents/{ids[0]}")).status_code == 204
    assert await chunks_of(url, ids[0]) == []
    assert_error(await admin.get(f"{KB}/{kb['id']}/documents/{ids[0]}"), 404, "document_not_found")
    assert await chunks_of(url, ids[1])

    assert (await admin.delete(f"{KB}/{kb['id']}")).status_code == 204
    async with read_database(url) as db:
        left = await db.scalar(
            select(func.count()).select_from(ChunkRow).where(ChunkRow.kb_id == kb["id"])
        )
        documents = await db.scalar(
            select(func.count()).select_from(DocumentRow).where(DocumentRow.kb_id == kb["id"])
        )
    assert left == 0 and documents == 0
    audit = await admin.get("/v1/admin/audit", params={"action": "knowledge_document.deleted"})
    assert any(e["target_id"] == ids[0] for e in audit.json()["data"])
