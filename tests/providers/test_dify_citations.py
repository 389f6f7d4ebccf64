"""A Dify app's own knowledge retrieval: its `retriever_resources` become the answer's citations
(blocking and streaming, stored in history), and a caller's `inputs` reach the app."""

from __future__ import annotations

from typing import Any

from tests.conftest import Caller, parse_sse
from tests.doubles.dify_api import RETRIEVER_RESOURCES
from tests.providers.test_dify import DifyGateway, carol, dify_gateway, send, sent_to_dify

__all__ = ["carol", "dify_gateway"]  # the fixtures of test_dify.py, for this module too

EXPECTED = [
    {
        "index": 1, "document_id": RETRIEVER_RESOURCES[1]["document_id"],
        "document_name": "kettle.pdf", "chunk_id": "ed599c7f-2f2e-4a7b-8d2a-31c1a8f2b3f4",
        "page": None, "score": 0.98, "text": "The warranty lasts three years.",
    },
    {
        "index": 2, "document_id": RETRIEVER_RESOURCES[0]["document_id"],
        "document_name": "kettle.pdf", "chunk_id": "segment-2",
        "page": None, "score": 0.71, "text": "Descale the kettle monthly.",
    },
]  # fmt: skip


async def test_blocking_answers_carry_difys_retriever_resources(carol: Caller) -> None:
    for assistant_id in ("chat", "chat-blocking"):
        session = await carol.new_session(assistant_id)
        response = await send(carol, session["id"], "warranty? [[cite]]")
        assert response.status_code == 200, response.text
        assert response.json()["message"]["citations"] == EXPECTED
        stored = (await carol.history(session["id"]))["data"]
        assert stored[-1]["citations"] == EXPECTED


async def test_streaming_sends_difys_citations_before_message_end(carol: Caller) -> None:
    session = await carol.new_session("chat")
    response = await send(carol, session["id"], "warranty? [[cite]]", "streaming")
    events = parse_sse(response.text)
    names = [e["event"] for e in events]
    assert names[0] == "message_start" and names[-2:] == ["citations", "message_end"], names
    assert "delta" in names
    assert events[-2]["data"] == {"citations": EXPECTED}
    assert events[-1]["data"]["message"]["citations"] == EXPECTED


async def test_an_app_without_retrieval_leaves_citations_null(carol: Caller) -> None:
    session = await carol.new_session("chat")
    response = await send(carol, session["id"], "no knowledge here")
    assert response.json()["message"]["citations"] is None


async def test_inputs_reach_the_dify_app(carol: Caller, dify_gateway: DifyGateway) -> None:
    session = await carol.new_session("chat")
    inputs: dict[str, Any] = {"region": "EU", "tier": 2}
    response = await carol.http.post(
        f"/v1/sessions/{session['id']}/messages", json={"content": "with inputs", "inputs": inputs}
    )
    assert response.status_code == 200, response.text
    assert sent_to_dify(dify_gateway.dify, "with inputs")["inputs"] == inputs
    answer = await carol.http.post(
        "/v1/qa", json={"question": "qa inputs", "assistant_id": "writer", "inputs": inputs}
    )
    assert answer.status_code == 200, answer.text
    assert sent_to_dify(dify_gateway.dify, "qa inputs")["inputs"] == {
        **inputs,
        "query": "qa inputs",
    }
    for bad_inputs in ({"a": [1]}, {"a": {"b": 1}}):
        bad = await carol.http.post("/v1/qa", json={"question": "x", "inputs": bad_inputs})
        assert bad.status_code == 422, bad.text
    huge = await carol.http.post(
        "/v1/qa", content=b'{"question": "x", "inputs": {"a": 1e400}}',
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert huge.status_code == 422, huge.text
