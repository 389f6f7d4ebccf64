"""A conversation over the Responses API: continued by `previous_response_id`, kept as a chatgate
session of its user (the history API shows it), private to that user, and not kept at all with
`store: false`."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.conftest import Gateway
from tests.responses.conftest import Client, session_of


def extra(response: Any) -> dict[str, Any]:
    """The fields this SDK has no attribute for (`store`, chatgate's own)."""
    fields: dict[str, Any] = response.model_extra or {}
    return fields


def test_a_response_is_continued_and_shown_in_the_history(gateway: Gateway, alice: Client) -> None:
    first = alice.sdk.responses.create(
        model="support", input="my parcel is late", instructions="Answer briefly."
    )
    assert first.id.startswith("resp_") and first.object == "response"
    assert first.status == "completed" and first.error is None
    assert first.model == "support"
    assert first.output_text == "echo: my parcel is late"
    assert first.instructions == "Answer briefly." and extra(first)["store"] is True
    assert first.usage is not None and first.usage.output_tokens > 0
    assert first.usage.total_tokens == first.usage.input_tokens + first.usage.output_tokens
    # The assistant's prompt first, then this response's instructions, then the input.
    assert gateway.double.api.requests[-1]["messages"] == [
        {"role": "system", "content": "You are support."},
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "my parcel is late"},
    ]

    second = alice.sdk.responses.create(
        model="support", input="where is it now", previous_response_id=first.id
    )
    assert second.output_text == "echo: where is it now"
    assert second.previous_response_id == first.id
    # The earlier turns reach the engine; the earlier instructions do not (OpenAI's rule).
    assert gateway.double.api.requests[-1]["messages"] == [
        {"role": "system", "content": "You are support."},
        {"role": "user", "content": "my parcel is late"},
        {"role": "assistant", "content": "echo: my parcel is late"},
        {"role": "user", "content": "where is it now"},
    ]

    session_id = session_of(first)
    assert session_of(second) == session_id
    history = alice.history(session_id)
    assert [(m["role"], m["content"]) for m in history] == [
        ("user", "my parcel is late"),
        ("assistant", "echo: my parcel is late"),
        ("user", "where is it now"),
        ("assistant", "echo: where is it now"),
    ]
    assert all(m["status"] == "complete" and m["tool_calls"] is None for m in history)
    assert history[1]["usage"]["completion_tokens"] == first.usage.output_tokens
    session = alice.session(session_id)
    assert session["assistant_id"] == "support" and session["title"] == "my parcel is late"
    assert session["message_count"] == 4

    # The stored object is given back as it was answered.
    assert alice.sdk.responses.retrieve(first.id).model_dump() == first.model_dump()


def test_an_item_list_input_with_roles_is_stored_as_messages(alice: Client) -> None:
    reply = alice.sdk.responses.create(
        model="echo",
        input=[
            {"role": "developer", "content": "Use short words."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        ],
    )
    assert reply.output_text == "echo: hi"
    history = alice.history(session_of(reply))
    assert [(m["role"], m["content"]) for m in history] == [
        ("system", "Use short words."),
        ("user", "hi"),
        ("assistant", "echo: hi"),
    ]


def test_a_fork_leaves_the_other_branch_out(gateway: Gateway, alice: Client) -> None:
    root = alice.sdk.responses.create(model="echo", input="root")
    left = alice.sdk.responses.create(model="echo", input="left", previous_response_id=root.id)
    right = alice.sdk.responses.create(model="echo", input="right", previous_response_id=root.id)
    assert [m["content"] for m in gateway.double.api.requests[-1]["messages"][1:]] == [
        "root",
        "echo: root",
        "right",
    ]
    alice.sdk.responses.create(model="echo", input="on", previous_response_id=right.id)
    sent = [m["content"] for m in gateway.double.api.requests[-1]["messages"][1:]]
    assert sent == ["root", "echo: root", "right", "echo: right", "on"]
    # Both branches are in the one session.
    assert session_of(left) == session_of(right) == session_of(root)
    assert len(alice.history(session_of(root))) == 8


def test_another_users_response_is_not_found(gateway: Gateway, alice: Client, bob: Client) -> None:
    mine = alice.sdk.responses.create(model="echo", input="private words")
    calls = len(gateway.double.api.requests)
    with pytest.raises(openai.NotFoundError) as info:
        bob.sdk.responses.create(model="echo", input="more", previous_response_id=mine.id)
    assert info.value.code == "previous_response_not_found"
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "previous_response_id"
    with pytest.raises(openai.NotFoundError) as unknown:
        bob.sdk.responses.create(model="echo", input="more", previous_response_id="resp_nope")
    assert unknown.value.code == "previous_response_not_found"
    assert len(gateway.double.api.requests) == calls  # refused before any engine is asked
    with pytest.raises(openai.NotFoundError) as read:
        bob.sdk.responses.retrieve(mine.id)
    assert read.value.code == "response_not_found"
    with pytest.raises(openai.NotFoundError):
        bob.sdk.responses.delete(mine.id)
    assert alice.sdk.responses.retrieve(mine.id).output_text == "echo: private words"


def test_store_false_keeps_nothing(alice: Client) -> None:
    before = alice.http.get("/v1/sessions").json()["data"]
    reply = alice.sdk.responses.create(model="echo", input="forget me", store=False)
    assert reply.output_text == "echo: forget me" and extra(reply)["store"] is False
    assert session_of(reply) is None
    with pytest.raises(openai.NotFoundError):
        alice.sdk.responses.retrieve(reply.id)
    with pytest.raises(openai.NotFoundError):
        alice.sdk.responses.create(model="echo", input="again", previous_response_id=reply.id)
    assert alice.http.get("/v1/sessions").json()["data"] == before


def test_delete_removes_the_response_and_its_messages(gateway: Gateway, alice: Client) -> None:
    first = alice.sdk.responses.create(model="echo", input="keep this")
    second = alice.sdk.responses.create(
        model="echo", input="drop this", previous_response_id=first.id
    )
    alice.sdk.responses.delete(second.id)  # the SDK reads no body: the raw one is checked below
    with pytest.raises(openai.NotFoundError):
        alice.sdk.responses.retrieve(second.id)
    session_id = session_of(first)
    assert [m["content"] for m in alice.history(session_id)] == ["keep this", "echo: keep this"]
    assert alice.session(session_id)["message_count"] == 2
    alice.sdk.responses.create(model="echo", input="then", previous_response_id=first.id)
    sent = [m["content"] for m in gateway.double.api.requests[-1]["messages"][1:]]
    assert sent == ["keep this", "echo: keep this", "then"]

    third = alice.sdk.responses.create(model="echo", input="once more")
    raw = alice.http.delete(f"/v1/responses/{third.id}")
    assert raw.status_code == 200
    assert raw.json() == {"id": third.id, "object": "response", "deleted": True}
    assert alice.http.delete(f"/v1/responses/{third.id}").status_code == 404


def test_a_conversation_keeps_its_model(alice: Client) -> None:
    first = alice.sdk.responses.create(model="echo", input="hello")
    with pytest.raises(openai.BadRequestError) as info:
        alice.sdk.responses.create(model="support", input="more", previous_response_id=first.id)
    assert info.value.code == "model_mismatch"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools.web_search"),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools.file_search"),
        ({"reasoning": {"effort": "low"}}, "reasoning"),
        # A type that is none of OpenAI's is the client's own text: not repeated.
        ({"tools": [{"type": "li.wei@example.com"}]}, "tools.unknown"),
        ({"text": {"format": {"type": "li.wei@example.com"}}}, "text.format"),
        ({"include": ["message.output_text.logprobs"]}, "include"),
        ({"background": True}, "background"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input.item_reference"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input.input_file",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input_image.file_id",
        ),
    ],
)
def test_what_chatgate_cannot_honour_is_refused_by_name(
    gateway: Gateway, alice: Client, params: dict[str, object], param: str
) -> None:
    calls = len(gateway.double.api.requests)
    body: dict[str, object] = {"model": "echo", "input": "hello", **params}
    with pytest.raises(openai.BadRequestError) as info:
        alice.sdk.responses.create(**body)  # type: ignore[call-overload]
    assert info.value.code == "unsupported_parameter"
    assert isinstance(info.value.body, dict) and info.value.body["param"] == param
    assert len(gateway.double.api.requests) == calls


def test_what_only_describes_the_request_is_accepted(alice: Client) -> None:
    reply = alice.sdk.responses.create(
        model="echo",
        input="tagged",
        metadata={"ticket": "42"},
        user="someone",
        service_tier="auto",
        prompt_cache_key="k",
        truncation="auto",
    )
    assert reply.output_text == "echo: tagged"
    assert reply.metadata == {"ticket": "42"}
    assert alice.sdk.responses.retrieve(reply.id).metadata == {"ticket": "42"}


def test_an_image_reaches_the_engine_and_is_kept_as_a_mark(gateway: Gateway, alice: Client) -> None:
    reply = alice.sdk.responses.create(
        model="echo",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is this?"},
                    {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "low"},
                ],
            }
        ],
    )
    assert "[image https://x.test/a.png]" in reply.output_text
    sent = gateway.double.api.requests[-1]["messages"][-1]["content"]
    assert sent[1] == {
        "type": "image_url",
        "image_url": {"url": "https://x.test/a.png", "detail": "low"},
    }
    assert alice.history(session_of(reply))[0]["content"] == "what is this?\n[image]"
    not_an_image: Any = [
        {"role": "user", "content": [{"type": "input_image", "image_url": "ftp://x/a"}]}
    ]
    with pytest.raises(openai.BadRequestError) as info:
        alice.sdk.responses.create(model="echo", input=not_an_image)
    assert info.value.code == "invalid_image_url"


def test_bad_metadata_is_refused_without_repeating_it(alice: Client) -> None:
    key = "li.wei@example.com"
    with pytest.raises(openai.BadRequestError) as info:
        alice.sdk.responses.create(model="echo", input="x", metadata={key: "v" * 513})
    assert info.value.code == "invalid_request"
    assert key not in info.value.response.text
    with pytest.raises(openai.NotFoundError) as unknown:
        alice.sdk.responses.retrieve(key)
    assert key not in unknown.value.response.text
