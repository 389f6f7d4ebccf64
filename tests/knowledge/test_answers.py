"""Answers grounded in a knowledge base, over real HTTP on SQLite and PostgreSQL: the engine (the
OpenAI double, which records requests) gets the numbered passages; the answer carries them as
citations in blocking, streaming, async mode, /v1/qa and history."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from chatgate.chat.context import MESSAGE_OVERHEAD
from chatgate.chat.grounding import KNOWLEDGE_HEADER, fit_passages, passage_block
from chatgate.knowledge.retrieval import Passage
from chatgate.providers.base import estimate_tokens
from tests.chat.test_context import record
from tests.conftest import Caller, Gateway, make_token, parse_sse
from tests.knowledge.helpers import KB, new_kb, settled, upload

WARRANTY = (
    "Warranty terms.\n\nThe Zephyr 9 kettle carries a warranty of three years from the date of "
    "purchase. Send the receipt to repairs@example.com to claim it."
)
QUESTION = "How long is the warranty of the Zephyr 9 kettle?"
UNCOVERED = "What is the capital city of Mongolia?"


@pytest.fixture
async def admin(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {make_token('kb-answers', admin=True)}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=60) as client:
        yield client


async def grounded_assistant(
    admin: httpx.AsyncClient, guards: dict[str, str] | None = None, **kb_fields: Any
) -> tuple[str, str, str]:
    """A knowledge base with one ready document, and an assistant on the double that uses it:
    (assistant id, kb id, document id)."""
    kb = await new_kb(admin, score_threshold=0.8, **kb_fields)
    accepted = (await upload(admin, kb["id"], "warranty.md", WARRANTY.encode())).json()
    assert (await settled(admin, kb["id"], accepted["id"]))["status"] == "ready"
    assistant_id = f"kb-{secrets.token_hex(3)}"
    spec = {
        "id": assistant_id, "name": "Grounded", "provider": "double", "model": "double-kb",
        "system_prompt": "You are support.", "max_context_tokens": 4000, "max_answer_tokens": 100,
        "knowledge_bases": [kb["id"]], "guards": guards or {"pii": "mask", "injection": "off"},
    }  # fmt: skip
    created = await admin.post("/v1/admin/assistants", json=spec)
    assert created.status_code == 201, created.text
    return assistant_id, kb["id"], accepted["id"]


def check_citation(citation: dict[str, Any], document_id: str) -> None:
    assert citation["index"] == 1 and citation["document_id"] == document_id
    assert citation["document_name"] == "warranty.md" and citation["page"] is None
    assert "three years" in citation["text"] and 0.8 <= citation["score"] <= 1
    assert citation["chunk_id"]


def sent_messages(gateway: Gateway) -> list[dict[str, Any]]:
    return gateway.double.api.requests[-1]["messages"]  # type: ignore[no-any-return]


async def test_blocking_answer_cites_the_passage_the_engine_was_given(
    admin: httpx.AsyncClient, alice: Caller, gateway: Gateway
) -> None:
    assistant_id, _, document_id = await grounded_assistant(admin)
    session = await alice.new_session(assistant_id)
    response = await alice.http.post(
        f"/v1/sessions/{session['id']}/messages", json={"content": QUESTION}
    )
    assert response.status_code == 200, response.text
    message = response.json()["message"]
    assert len(message["citations"]) == 1
    check_citation(message["citations"][0], document_id)

    sent = sent_messages(gateway)
    assert [m["role"] for m in sent] == ["system", "system", "user"]
    assert sent[0]["content"] == "You are support."
    knowledge = sent[1]["content"]
    assert knowledge.startswith(KNOWLEDGE_HEADER) and "[1] (warranty.md)\n" in knowledge
    assert "three years" in knowledge
    # The passage passes the PII guard like any text the engine sees; the citation keeps it.
    assert "repairs@example.com" not in knowledge and "[EMAIL_1]" in knowledge
    assert "repairs@example.com" in message["citations"][0]["text"]

    history = await alice.history(session["id"])
    stored = next(m for m in history["data"] if m["role"] == "assistant")
    assert stored["citations"] == message["citations"]
    user_row = next(m for m in history["data"] if m["role"] == "user")
    assert user_row["citations"] is None


async def test_streaming_sends_citations_before_the_first_delta(
    admin: httpx.AsyncClient, alice: Caller
) -> None:
    assistant_id, _, document_id = await grounded_assistant(admin)
    session = await alice.new_session(assistant_id)
    response = await alice.http.post(
        f"/v1/sessions/{session['id']}/messages",
        json={"content": QUESTION, "response_mode": "streaming"},
    )
    events = parse_sse(response.text)
    names = [e["event"] for e in events]
    assert names[:3] == ["message_start", "citations", "delta"], names
    assert names[-1] == "message_end"
    check_citation(events[1]["data"]["citations"][0], document_id)
    assert events[-1]["data"]["message"]["citations"] == events[1]["data"]["citations"]


async def test_async_mode_and_qa_carry_citations(admin: httpx.AsyncClient, alice: Caller) -> None:
    assistant_id, _, document_id = await grounded_assistant(admin)
    session = await alice.new_session(assistant_id)
    response = await alice.http.post(
        f"/v1/sessions/{session['id']}/messages",
        json={"content": QUESTION, "response_mode": "async"},
    )
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    for _ in range(200):
        task = (await alice.http.get(f"/v1/tasks/{task_id}")).json()
        if task["status"] == "succeeded":
            break
        await asyncio.sleep(0.05)
    assert task["status"] == "succeeded", task
    check_citation(task["message"]["citations"][0], document_id)

    answer = await alice.http.post(
        "/v1/qa", json={"question": QUESTION, "assistant_id": assistant_id}
    )
    assert answer.status_code == 200, answer.text
    check_citation(answer.json()["citations"][0], document_id)


async def test_uncovered_question_and_deleted_document_cite_nothing(
    admin: httpx.AsyncClient, alice: Caller, gateway: Gateway
) -> None:
    assistant_id, kb_id, document_id = await grounded_assistant(admin)
    session = await alice.new_session(assistant_id)
    url = f"/v1/sessions/{session['id']}/messages"
    response = await alice.http.post(url, json={"content": UNCOVERED})
    assert response.json()["message"]["citations"] == []
    assert [m["role"] for m in sent_messages(gateway)] == ["system", "user"]

    deleted = await admin.delete(f"{KB}/{kb_id}/documents/{document_id}")
    assert deleted.status_code == 204
    response = await alice.http.post(url, json={"content": QUESTION})
    assert response.json()["message"]["citations"] == []
    assert not any("three years" in m["content"] for m in sent_messages(gateway))


async def test_an_assistant_without_knowledge_bases_has_no_citations(alice: Caller) -> None:
    session = await alice.new_session("echo")
    response = await alice.http.post(
        f"/v1/sessions/{session['id']}/messages", json={"content": QUESTION}
    )
    assert response.json()["message"]["citations"] is None


class EstimatingCounter:
    """Counts as the OpenAI double's provider does."""

    async def count_tokens_async(self, text: str) -> int:
        return estimate_tokens(text)


def passage(text: str, score: float) -> Passage:
    return Passage(uuid.uuid4(), "manual.md", uuid.uuid4(), None, score, text)


async def test_whole_passages_are_fitted_dropping_the_lowest_ranked() -> None:
    ranked = [
        passage("First sentence. " * 20, 0.9),
        passage("Second sentence. " * 5, 0.8),
        passage("Third sentence. " * 40, 0.7),
    ]
    fixed = estimate_tokens(KNOWLEDGE_HEADER) + MESSAGE_OVERHEAD
    sizes = [estimate_tokens("\n\n" + passage_block(i, p)) for i, p in enumerate(ranked, 1)]
    counter = EstimatingCounter()
    everything = await fit_passages(ranked, room=fixed + sum(sizes), counter=counter)
    assert everything.passages == tuple(ranked) and everything.tokens == fixed + sum(sizes)
    # One token short of all three: the lowest-ranked goes whole, never cut.
    two = await fit_passages(ranked, room=fixed + sum(sizes) - 1, counter=counter)
    assert two.passages == tuple(ranked[:2]) and two.tokens == fixed + sizes[0] + sizes[1]
    assert [c["index"] for c in two.citations()] == [1, 2]
    # The best one alone does not fit: nothing goes (no passage cut mid-sentence).
    none = await fit_passages(ranked, room=fixed + sizes[0] - 1, counter=counter)
    assert none.passages == () and none.tokens == 0 and none.citations() == []


async def test_the_answer_cache_never_answers_across_a_document_change(
    admin: httpx.AsyncClient, alice: Caller, gateway: Gateway
) -> None:
    # No guard: a masked passage alone would keep the answer out of the cache.
    guards = {"pii": "off", "injection": "off"}
    assistant_id, kb_id, document_id = await grounded_assistant(admin, guards)
    body = {"question": QUESTION, "assistant_id": assistant_id}
    first = await alice.http.post("/v1/qa", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["cached"] is False and len(first.json()["citations"]) == 1
    assert first.headers.get("x-chatgate-cache", "bypass") != "hit"

    deleted = await admin.delete(f"{KB}/{kb_id}/documents/{document_id}")
    assert deleted.status_code == 204
    engine_calls = len(gateway.double.api.requests)
    second = await alice.http.post("/v1/qa", json=body)
    assert second.status_code == 200, second.text
    # Asked again in a new session: the engine answers, without the deleted passage.
    assert second.json()["cached"] is False and second.json()["citations"] == []
    assert len(gateway.double.api.requests) == engine_calls + 1
    assert not any("three years" in m["content"] for m in sent_messages(gateway))


async def test_history_gets_what_the_passages_leave(
    admin: httpx.AsyncClient, alice: Caller, gateway: Gateway
) -> None:
    """Passages are fitted first; the history is trimmed to the rest of the context."""
    assistant_id, _, _ = await grounded_assistant(admin)
    window, answer_room = 400, 100
    patched = await admin.patch(
        f"/v1/admin/assistants/{assistant_id}",
        json={"max_context_tokens": window, "max_answer_tokens": answer_room},
    )
    assert patched.status_code == 200, patched.text
    session = await alice.new_session(assistant_id)
    url = f"/v1/sessions/{session['id']}/messages"
    earlier = [f"note {i}: " + "filler words " * 12 for i in range(8)]
    for text in earlier:
        await record(alice, session["id"], text)  # counted as the double's provider counts
    response = await alice.http.post(url, json={"content": QUESTION})
    assert response.status_code == 200, response.text
    (citation,) = response.json()["message"]["citations"]

    sent = sent_messages(gateway)
    assert sent[1]["content"].startswith(KNOWLEDGE_HEADER)
    passages = (
        estimate_tokens(KNOWLEDGE_HEADER) + MESSAGE_OVERHEAD
        + estimate_tokens("\n\n" + passage_block(1, passage(citation["text"], 1.0)))
    )  # fmt: skip
    room = (
        window - answer_room - estimate_tokens("You are support.") - 2 * MESSAGE_OVERHEAD
        - estimate_tokens(QUESTION)
    )  # fmt: skip
    history = [m["content"] for m in sent[2:-1]]
    used = sum(estimate_tokens(text) + MESSAGE_OVERHEAD for text in history)
    assert history and used <= room - passages
    # The newest whole messages that fit: one more would not have.
    assert history == earlier[-len(history) :]
    next_older = earlier[-len(history) - 1]
    assert used + estimate_tokens(next_older) + MESSAGE_OVERHEAD > room - passages
    # Without the passages, that older message would have fitted: they really took the room.
    assert used + estimate_tokens(next_older) + MESSAGE_OVERHEAD <= room


async def test_openai_dialect_answers_from_the_knowledge_base_with_citations(
    admin: httpx.AsyncClient, gateway: Gateway
) -> None:
    """/v1/chat/completions grounds an assistant with knowledge bases like chatgate's own API:
    the engine gets the passages after the assistant's prompt, the answer names them."""
    assistant_id, _, document_id = await grounded_assistant(admin)
    headers = {"Authorization": f"Bearer {make_token('kb-dialect')}"}
    body = {"model": assistant_id, "messages": [{"role": "user", "content": QUESTION}]}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=30) as http:
        whole = await http.post("/v1/chat/completions", json=body)
        assert whole.status_code == 200, whole.text
        sent = sent_messages(gateway)
        streamed = await http.post("/v1/chat/completions", json={**body, "stream": True})
        uncovered = await http.post(
            "/v1/chat/completions",
            json={**body, "messages": [{"role": "user", "content": UNCOVERED}]},
        )
    [citation] = whole.json()["chatgate_citations"]
    check_citation(citation, document_id)
    assert [m["role"] for m in sent] == ["system", "system", "user"]
    assert sent[1]["content"].startswith(KNOWLEDGE_HEADER) and "three years" in sent[1]["content"]
    assert "[EMAIL_1]" in sent[1]["content"]  # the passage passed the PII guard
    first = json.loads(streamed.text.split("\n\n")[0].removeprefix("data: "))
    assert first["chatgate_citations"] == whole.json()["chatgate_citations"]
    assert uncovered.json()["chatgate_citations"] == []
