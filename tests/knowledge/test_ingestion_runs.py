"""Where and how far ingestion runs: the upload cap (at the front door for a declared length,
in the route for the file), documents a dead process left `processing`, and ingestion on the
Redis queue by `chatgate worker` processes."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert

from chatgate.core.config import KnowledgeSettings
from chatgate.core.time import utcnow
from chatgate.knowledge.models import DocumentRow
from tests.conftest import (
    Double,
    Gateway,
    assert_error,
    make_token,
    read_database,
    serve_chatgate,
    settings_for,
)
from tests.knowledge.helpers import KB, new_kb, settled, upload
from tests.tasks.test_worker import REDIS_URL, workers

ADMIN = {"Authorization": f"Bearer {make_token('kb-admin', admin=True)}"}
CAP = 4096


async def test_uploads_are_capped_by_their_own_setting(
    database_url: str, openai_double: Double, gateway: Gateway
) -> None:
    settings = settings_for(
        database_url, openai_double.url, knowledge=KnowledgeSettings(max_upload_bytes=CAP)
    )
    async with (
        serve_chatgate(settings) as url,
        httpx.AsyncClient(base_url=url, headers=ADMIN, timeout=60) as admin,
    ):
        kb = await new_kb(admin)
        fits = await upload(admin, kb["id"], "fits.txt", b"word. " * (CAP // 6))
        assert fits.status_code == 202, fits.text
        await settled(admin, kb["id"], fits.json()["id"])
        assert_error(await upload(admin, kb["id"], "over.txt", b"x" * (CAP + 1)), 413, "too_large")
        # Far over: refused at the front door from its Content-Length, before its credentials.
        async with httpx.AsyncClient(base_url=url, timeout=60) as anonymous:
            huge = await upload(anonymous, kb["id"], "huge.txt", b"x" * (CAP + 100_000))
        assert_error(huge, 413, "too_large")
        await admin.delete(f"{KB}/{kb['id']}")
    # The default cap (20 MiB) takes a file over the 1 MiB that other bodies may have.
    async with httpx.AsyncClient(base_url=gateway.url, headers=ADMIN, timeout=60) as admin:
        kb = await new_kb(admin)
        big = b"%PDF-1.7\n" + b"0" * (1536 * 1024)
        accepted = await upload(admin, kb["id"], "big.pdf", big)
        assert accepted.status_code == 202, accepted.text
        assert (await settled(admin, kb["id"], accepted.json()["id"]))["status"] == "failed"


async def test_documents_left_processing_by_a_dead_process_fail_at_start(
    database_url: str, openai_double: Double
) -> None:
    settings = settings_for(database_url, openai_double.url)
    async with (
        serve_chatgate(settings) as url,
        httpx.AsyncClient(base_url=url, headers=ADMIN, timeout=60) as admin,
    ):
        kb = await new_kb(admin)
    # As a process that died mid-ingestion leaves them: one long silent, one just now.
    stale, fresh = uuid.uuid4(), uuid.uuid4()
    async with read_database(database_url) as db:
        for document_id, age in ((stale, timedelta(hours=1)), (fresh, timedelta(0))):
            await db.execute(insert(DocumentRow).values(
                id=document_id, kb_id=kb["id"], name="a.txt", sha256=secrets.token_hex(32),
                media_type="text/plain", size=1, status="processing", progress=0.5,
                chunk_count=0, content=b"a", created_at=utcnow() - age,
                updated_at=utcnow() - age,
            ))  # fmt: skip
        await db.commit()
    async with (
        serve_chatgate(settings) as url,
        httpx.AsyncClient(base_url=url, headers=ADMIN, timeout=60) as admin,
    ):
        documents = {
            d["id"]: d for d in (await admin.get(f"{KB}/{kb['id']}/documents")).json()["data"]
        }
        assert documents[str(stale)]["status"] == "failed"
        assert documents[str(stale)]["error"]["code"] == "ingestion_interrupted"
        # The embedded default (SQLite, no Redis) owns every ingestion: all of them ended with
        # its process. On PostgreSQL another process may be on the fresh one: it stays.
        expected = "failed" if settings.is_sqlite else "processing"
        assert documents[str(fresh)]["status"] == expected
        await admin.delete(f"{KB}/{kb['id']}")


async def test_with_redis_the_queue_workers_ingest(
    database_url: str, openai_double: Double, tmp_path: Path
) -> None:
    base = settings_for(database_url, openai_double.url)
    settings = base.model_copy(update={
        "redis_url": REDIS_URL,
        "task_queue": f"chatgate-test:{secrets.token_hex(4)}",
        "providers": [p for p in base.providers if p.type != "local"],
        "assistants": [a for a in base.assistants if a.provider != "local"],
    })  # fmt: skip
    async with (
        serve_chatgate(settings) as url,
        httpx.AsyncClient(base_url=url, headers=ADMIN, timeout=60) as admin,
    ):
        kb = await new_kb(admin)
        accepted = await upload(admin, kb["id"], "queued.md", b"Queued for a worker. It reads.")
        assert accepted.status_code == 202, accepted.text
        await asyncio.sleep(1)
        path = f"{KB}/{kb['id']}/documents/{accepted.json()['id']}"
        waiting = (await admin.get(path)).json()
        assert waiting["status"] == "processing" and waiting["progress"] == 0  # no worker yet
        with workers(settings, tmp_path):
            document = await settled(admin, kb["id"], accepted.json()["id"])
        assert document["status"] == "ready" and document["chunk_count"] == 1
        await admin.delete(f"{KB}/{kb['id']}")
