"""History pages carry an ETag; If-None-Match with the current one is a 304, and any write that
changes the page (a message appended, an answer flushed or ended, a message changed or deleted,
in this process or another) changes it. Pages kept in memory are never served stale or to
another user."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, update

from chatgate.chat.history import PageCache, PageKey, etag_matches
from chatgate.chat.models import Message
from chatgate.core.ids import new_id
from chatgate.core.time import utcnow
from tests.chat.test_history import record
from tests.conftest import Caller, Gateway, assert_error, open_caller, read_database, serve_chatgate


async def page(
    caller: Caller, session_id: str, etag: str | None = None, **params: Any
) -> httpx.Response:
    headers = {"If-None-Match": etag} if etag else {}
    return await caller.http.get(f"/v1/history/{session_id}", params=params, headers=headers)


async def test_a_page_not_modified_is_a_304_without_a_body(alice: Caller) -> None:
    session = await alice.new_session("echo")
    await record(alice, session["id"], "hello")
    first = await page(alice, session["id"])
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert first.headers["cache-control"] == "private, no-cache"
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = await page(alice, session["id"], sent)
        assert again.status_code == 304, sent
        assert again.content == b""
        assert again.headers["etag"] == etag
    # A page read again without the tag is the same page, with the same tag.
    same = await page(alice, session["id"])
    assert same.json() == first.json() and same.headers["etag"] == etag
    assert (await page(alice, session["id"], '"something else"')).status_code == 200


async def test_an_appended_message_changes_the_page_and_its_etag(alice: Caller) -> None:
    session = await alice.new_session("echo")
    await record(alice, session["id"], "one")
    etag = (await page(alice, session["id"])).headers["etag"]
    await record(alice, session["id"], "two")
    changed = await page(alice, session["id"], etag)
    assert changed.status_code == 200
    assert [m["content"] for m in changed.json()["data"]] == ["one", "two"]
    assert changed.headers["etag"] != etag
    assert (await page(alice, session["id"], changed.headers["etag"])).status_code == 304


async def test_each_page_has_its_own_etag(alice: Caller) -> None:
    session = await alice.new_session("echo")
    ids = [await record(alice, session["id"], f"m{i}") for i in range(5)]
    newest = await page(alice, session["id"], limit=2)
    older = await page(alice, session["id"], limit=2, before=ids[3])
    assert newest.headers["etag"] != older.headers["etag"]
    # Another page's tag is not this page's.
    assert (await page(alice, session["id"], older.headers["etag"], limit=2)).status_code == 200
    assert (
        await page(alice, session["id"], older.headers["etag"], limit=2, before=ids[3])
    ).status_code == 304
    # A message appended is on the newest page, not on the older one.
    await record(alice, session["id"], "m5")
    assert (await page(alice, session["id"], newest.headers["etag"], limit=2)).status_code == 200
    assert (
        await page(alice, session["id"], older.headers["etag"], limit=2, before=ids[3])
    ).status_code == 304


async def test_another_users_session_is_a_404_even_with_its_etag(
    alice: Caller, bob: Caller
) -> None:
    session = await alice.new_session("echo")
    await record(alice, session["id"], "private")
    etag = (await page(alice, session["id"])).headers["etag"]
    for sent in (None, etag, "*"):
        refused = await page(bob, session["id"], sent)
        assert_error(refused, 404, "session_not_found")
        assert "etag" not in refused.headers


async def test_an_answer_flushed_and_ended_changes_the_page(
    alice: Caller, gateway: Gateway
) -> None:
    """As the answer writer saves a streamed answer: its text on the way, then its end."""
    session = await alice.new_session("echo")
    await record(alice, session["id"], "tell me a story")
    answer_id = new_id()
    async with read_database(gateway.settings.database_url) as db:
        now = utcnow()
        db.add(
            Message(
                id=answer_id, session_id=uuid.UUID(session["id"]), role="assistant",
                content="Once", status="streaming", created_at=now, updated_at=now,
            )
        )  # fmt: skip
        await db.commit()
    seen = await page(alice, session["id"])
    assert seen.json()["data"][-1]["content"] == "Once"
    etag = seen.headers["etag"]
    steps: list[dict[str, Any]] = [
        {"content": "Once upon a time", "updated_at": utcnow()},  # a flush (_save_partial)
        {"content": "Once upon a time.", "status": "complete", "updated_at": utcnow()},  # the end
    ]
    for values in steps:
        async with read_database(gateway.settings.database_url) as db:
            await db.execute(update(Message).where(Message.id == answer_id).values(**values))
            await db.commit()
        now_page = await page(alice, session["id"], etag)
        assert now_page.status_code == 200
        last = now_page.json()["data"][-1]
        assert last["content"] == values["content"]
        assert last["status"] == values.get("status", "streaming")
        etag = now_page.headers["etag"]


async def test_a_write_that_does_not_name_updated_at_still_changes_the_etag(
    alice: Caller, gateway: Gateway
) -> None:
    session = await alice.new_session("echo")
    message_id = await record(alice, session["id"], "before")
    etag = (await page(alice, session["id"])).headers["etag"]
    async with read_database(gateway.settings.database_url) as db:
        await db.execute(
            update(Message).where(Message.id == uuid.UUID(message_id)).values(content="after")
        )
        await db.commit()
    changed = await page(alice, session["id"], etag)
    assert changed.status_code == 200
    assert changed.json()["data"][0]["content"] == "after"


async def test_deleted_messages_and_sessions(alice: Caller, gateway: Gateway) -> None:
    session = await alice.new_session("echo")
    ids = [await record(alice, session["id"], f"m{i}") for i in range(3)]
    etag = (await page(alice, session["id"])).headers["etag"]
    async with read_database(gateway.settings.database_url) as db:  # as retention does
        await db.execute(delete(Message).where(Message.id == uuid.UUID(ids[0])))
        await db.commit()
    fewer = await page(alice, session["id"], etag)
    assert fewer.status_code == 200
    assert [m["id"] for m in fewer.json()["data"]] == ids[1:]
    assert (await alice.http.delete(f"/v1/sessions/{session['id']}")).status_code == 204
    for sent in (None, fewer.headers["etag"]):
        assert_error(await page(alice, session["id"], sent), 404, "session_not_found")


async def test_an_empty_session_has_an_etag_that_its_first_message_changes(alice: Caller) -> None:
    session = await alice.new_session("echo")
    empty = await page(alice, session["id"])
    assert empty.json()["data"] == []
    assert (await page(alice, session["id"], empty.headers["etag"])).status_code == 304
    await record(alice, session["id"], "first")
    assert (await page(alice, session["id"], empty.headers["etag"])).status_code == 200


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_write_in_another_replica_is_seen_at_once(alice: Caller, gateway: Gateway) -> None:
    """Two processes on one database, no Redis: what one keeps, the other's write outdates."""
    session = await alice.new_session("echo")
    await record(alice, session["id"], "one")
    for _ in range(2):  # read, and served from what this process kept
        kept = await page(alice, session["id"])
    async with (
        serve_chatgate(gateway.settings) as other,
        open_caller(other, alice.user_id) as replica,
    ):
        await record(replica, session["id"], "two")
        assert [m["content"] for m in (await replica.history(session["id"]))["data"]] == [
            "one",
            "two",
        ]
    now = await page(alice, session["id"])
    assert [m["content"] for m in now.json()["data"]] == ["one", "two"]
    assert now.headers["etag"] != kept.headers["etag"]
    assert (await page(alice, session["id"], kept.headers["etag"])).status_code == 200


async def test_the_lane_takes_only_get_and_only_one_segment(alice: Caller) -> None:
    session = await alice.new_session("echo")
    refused = await alice.http.post(f"/v1/history/{session['id']}", json={})
    assert_error(refused, 405, "method_not_allowed")
    assert refused.headers["allow"] == "GET"
    assert_error(await alice.http.get(f"/v1/history/{session['id']}/more"), 404, "not_found")


def test_kept_pages_are_bounded_and_forgotten() -> None:
    pages = PageCache(max_bytes=10)
    key = PageKey("alice", uuid.uuid4(), 50, None)
    pages.put(key, '"a"', b"12345")
    assert pages.get(key, '"a"') == b"12345"
    assert pages.get(key, '"b"') is None  # kept for another ETag: not served
    other = PageKey("bob", uuid.uuid4(), 50, None)
    pages.put(other, '"c"', b"123456")  # over 10 bytes in all: the oldest goes
    assert pages.get(key, '"a"') is None and pages.get(other, '"c"') == b"123456"
    pages.forget_user("bob")
    assert len(pages) == 0


def test_if_none_match_is_compared_weakly() -> None:
    assert etag_matches('"x"', '"x"') and etag_matches('W/"x"', '"x"')
    assert etag_matches(' "y" , W/"x"', '"x"') and etag_matches("*", '"x"')
    assert not etag_matches('"y"', '"x"') and not etag_matches("x", '"x"')
