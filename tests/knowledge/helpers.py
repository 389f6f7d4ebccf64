"""Shared helpers of the knowledge tests: an admin client, files of each format, and waiting for
a document's ingestion, all over real HTTP."""

from __future__ import annotations

import asyncio
import io
import re
import secrets
import time
from typing import Any

import httpx

KB = "/v1/admin/knowledge-bases"


async def new_kb(admin: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"id": f"kb-{secrets.token_hex(4)}", "name": "Manuals", **fields}
    response = await admin.post(KB, json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def upload(
    admin: httpx.AsyncClient, kb_id: str, name: str, content: bytes, media_type: str = ""
) -> httpx.Response:
    files = {"file": (name, content, media_type or "application/octet-stream")}
    return await admin.post(f"{KB}/{kb_id}/documents", files=files)


async def settled(
    admin: httpx.AsyncClient, kb_id: str, document_id: str, seconds: float = 90
) -> dict[str, Any]:
    """The document once it is no longer `processing`."""
    deadline = time.monotonic() + seconds
    while True:
        response = await admin.get(f"{KB}/{kb_id}/documents/{document_id}")
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        if document["status"] != "processing":
            return document
        assert 0 <= document["progress"] < 1
        assert time.monotonic() < deadline, document
        await asyncio.sleep(0.1)


def pdf_bytes(pages: list[str], password: str | None = None) -> bytes:
    """A PDF of these pages (blank lines separate paragraphs), in Chinese or English: Adobe's
    STSong-Light CID font is built into every PDF reader, so nothing needs embedding."""
    from xml.sax.saxutils import escape

    from reportlab.lib.pdfencrypt import StandardEncryption
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Flowable, PageBreak, Paragraph, SimpleDocTemplate, Spacer

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    story: list[Flowable] = []
    for number, text in enumerate(pages):
        if number:
            story.append(PageBreak())
        # Chinese wraps between any two characters; English only at spaces.
        wrap = "CJK" if re.search("[\u4e00-\u9fff]", text) else None
        style = ParagraphStyle("body", fontName="STSong-Light", fontSize=12, wordWrap=wrap)
        paragraphs = [p for p in text.split("\n\n") if p.strip()]
        story.extend(Paragraph(escape(p), style) for p in paragraphs)
        if not paragraphs:
            story.append(Spacer(1, 1))
    out = io.BytesIO()
    encrypt = StandardEncryption(password, ownerPassword="owner") if password else None
    SimpleDocTemplate(out, encrypt=encrypt).build(story)
    return out.getvalue()


def docx_bytes(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                grid.cell(r, c).text = cell
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
