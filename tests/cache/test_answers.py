"""The answer cache on one chatgate with the in-process backend: context-free questions asked
again are answered without the engine, marked, counted, and stored in history all the same."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.cache.conftest import EngineCalls, first_message, new_assistant, qa, unique
from tests.conftest import Caller, parse_sse


async def test_a_repeated_question_is_answered_from_the_cache(
    carol: Caller, dave: Caller, engine: EngineCalls
) -> None:
    question = unique("What are your opening hours?")
    first = await qa(carol, question)
    assert first.headers["x-cache"] == "miss" and first.json()["cached"] is False
    assert engine.count == 1

    # Another user, the same text: the engine would have received the same input. (Another way
    # of typing it is another input: see test_poisoning.py.)
    variant = question
    second = await qa(dave, variant)
    assert engine.count == 1
    assert second.headers["x-cache"] == "hit"
    body = second.json()
    assert body["cached"] is True and body["answer"] == first.json()["answer"]
    assert body["session_id"] != first.json()["session_id"]
    # Stored in history like any answer, and marked.
    page = await dave.history(body["session_id"])
    assert [(m["role"], m["status"], m["cached"]) for m in page["data"]] == [
        ("user", "complete", False),
        ("assistant", "complete", True),
    ]
    assert page["data"][0]["content"] == variant
    assert page["data"][1]["content"] == first.json()["answer"]
    session = (await dave.http.get(f"/v1/sessions/{body['session_id']}")).json()
    assert session["message_count"] == 2


async def test_a_sessions_first_question_hits_and_later_ones_never_use_the_cache(
    carol: Caller, engine: EngineCalls
) -> None:
    question = unique("how do I track my parcel")
    _, miss = await first_message(carol, question)
    assert miss.headers["x-cache"] == "miss"
    session, hit = await first_message(carol, question)
    assert hit.status_code == 200 and hit.headers["x-cache"] == "hit"
    assert hit.json()["message"]["cached"] is True
    assert hit.json()["message"]["content"] == miss.json()["message"]["content"]
    assert hit.json()["message"]["usage"] is None
    assert engine.count == 1

    # The same question again in that session has context now: the engine answers it.
    again = await carol.http.post(
        f"/v1/sessions/{session['id']}/messages", json={"content": question}
    )
    assert again.status_code == 200 and "x-cache" not in again.headers
    assert again.json()["message"]["cached"] is False
    assert engine.count == 2
    # ... and it sees the cached exchange as the conversation so far.
    assert engine.last_sent() == [
        "Echo the user.",
        question,
        miss.json()["message"]["content"],
        question,
    ]

    # /v1/qa continuing a session is not context-free either.
    follow_up = await carol.http.post(
        "/v1/qa", json={"question": question, "session_id": session["id"]}
    )
    assert "x-cache" not in follow_up.headers and follow_up.json()["cached"] is False
    assert engine.count == 3


async def test_streaming_and_async_hits(carol: Caller, engine: EngineCalls) -> None:
    question = unique("Do you ship abroad")
    _, miss = await first_message(carol, question, mode="streaming")
    assert miss.headers["x-cache"] == "miss"
    answer = parse_sse(miss.text)[-1]["data"]["message"]["content"]

    _, hit = await first_message(carol, question, mode="streaming")
    assert hit.headers["x-cache"] == "hit"
    assert hit.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(hit.text)
    assert [e["event"] for e in events] == ["message_start", "delta", "message_end"]
    assert events[1]["data"] == {"text": answer}
    end = events[2]["data"]["message"]
    assert end["cached"] is True and end["status"] == "complete" and end["content"] == answer
    assert end["id"] == events[0]["data"]["message_id"]

    _, queued = await first_message(carol, question, mode="async")
    assert queued.status_code == 202 and queued.headers["x-cache"] == "hit"
    task = (await carol.http.get(f"/v1/tasks/{queued.json()['task_id']}")).json()
    assert task["status"] == "succeeded" and task["message"]["cached"] is True
    assert engine.count == 1


async def test_no_cache_asks_the_engine_and_refreshes_the_entry(
    carol: Caller, admin: httpx.AsyncClient, engine: EngineCalls
) -> None:
    question = unique("Where is my refund")
    await qa(carol, question)
    # An admin's refresh (anyone else's leaves the entry: test_poisoning.py, which also shows
    # the entry replaced by an answer other than the one it held).
    fresh = await admin.post(
        "/v1/qa", json={"question": question, "assistant_id": "echo"},
        headers={"Cache-Control": "no-cache"},
    )  # fmt: skip
    assert fresh.headers["x-cache"] == "bypass" and fresh.json()["cached"] is False
    assert engine.count == 2
    # The fresh answer is in the entry.
    hit = await qa(carol, question)
    assert hit.headers["x-cache"] == "hit" and hit.json()["answer"] == fresh.json()["answer"]
    assert engine.count == 2


async def test_no_store_keeps_the_answer_out_of_the_cache(
    carol: Caller, engine: EngineCalls
) -> None:
    question = unique("Can I change my address")
    _, bypass = await first_message(carol, question, headers={"Cache-Control": "no-store"})
    assert bypass.headers["x-cache"] == "bypass"
    assert (await qa(carol, question)).headers["x-cache"] == "miss"
    assert engine.count == 2


async def test_answers_that_did_not_complete_are_not_cached(
    carol: Caller, engine: EngineCalls
) -> None:
    failing = unique("[[status 400]] is the shop open")
    cut = unique("[[die-after 2]] tell me a story")
    for _ in range(2):
        calls = engine.count
        response = await carol.http.post(
            "/v1/qa", json={"question": failing, "assistant_id": "echo"}
        )
        assert response.status_code != 200 and response.headers.get("x-cache") != "hit"
        _, response = await first_message(carol, cut, mode="streaming")
        assert response.headers["x-cache"] == "miss"
        assert parse_sse(response.text)[-1]["event"] == "error"
        assert engine.count >= calls + 2  # the engine was asked both times (maybe retried)


async def test_an_assistant_edit_makes_the_next_ask_miss(
    carol: Caller, admin: httpx.AsyncClient, engine: EngineCalls
) -> None:
    assistant_id = await new_assistant(admin)
    question = unique("what is the warranty")
    await qa(carol, question, assistant_id=assistant_id)
    assert (await qa(carol, question, assistant_id=assistant_id)).headers["x-cache"] == "hit"
    edited = await admin.patch(
        f"/v1/admin/assistants/{assistant_id}", json={"system_prompt": "Answer FAQs, v2."}
    )
    assert edited.json()["version"] == 2
    after = await qa(carol, question, assistant_id=assistant_id)
    assert after.headers["x-cache"] == "miss"
    assert engine.last_sent()[0] == "Answer FAQs, v2."
    assert (await qa(carol, question, assistant_id=assistant_id)).headers["x-cache"] == "hit"
    assert engine.count == 2


async def test_assistants_keep_their_own_entries_and_may_opt_out(
    carol: Caller, admin: httpx.AsyncClient, engine: EngineCalls
) -> None:
    question = unique("do you price match")
    await qa(carol, question, assistant_id="echo")
    other = await qa(carol, question, assistant_id="support")
    assert other.headers["x-cache"] == "miss"
    opted_out = await new_assistant(admin, cache_answers=False)
    for _ in range(2):
        response = await qa(carol, question, assistant_id=opted_out)
        assert "x-cache" not in response.headers
    assert engine.count == 4


async def test_hits_and_misses_are_counted(carol: Caller) -> None:
    async def counts() -> dict[str, float]:
        text = (await carol.http.get("/metrics")).text
        return {
            s.labels["result"]: s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "chatgate_cache_requests_total"
        }

    before = await counts()
    question = unique("is there a student discount")
    await qa(carol, question)
    await qa(carol, question)
    await qa(carol, question, headers={"Cache-Control": "no-cache"})
    after = await counts()
    for result in ("hit", "miss", "bypass"):
        assert after[result] - before.get(result, 0.0) == 1, result
