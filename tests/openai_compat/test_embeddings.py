"""`POST /v1/embeddings` through the official `openai` package, as if chatgate were OpenAI: the
bundled model (`local`) and an OpenAI-compatible engine (the double, `remote`), over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from chatgate.core.config import EmbedderConfig
from chatgate.core.policies import RateLimitSettings
from chatgate.providers.base import estimate_tokens
from tests.conftest import Double, Gateway, make_token, settings_for
from tests.doubles.openai_api import OpenAIDouble
from tests.runner import run_chatgate

TOKENS_PER_MINUTE = 20_000


@pytest.fixture(scope="module")
def gateway(database_url: str, openai_double: Double) -> Iterator[Gateway]:
    """The bundled model, the double as an engine, and the double again under an id the `echo`
    assistant has too, and under one no other test asks for."""

    def remote(embedder_id: str) -> EmbedderConfig:
        return EmbedderConfig(
            id=embedder_id,
            type="openai",
            base_url=f"{openai_double.url}/v1",
            api_key_env="DOUBLE_API_KEY",
            model=f"double-embed-{embedder_id}",
        )

    settings = settings_for(
        database_url,
        openai_double.url,
        embedders=[
            EmbedderConfig(id="local", type="local"),
            remote("remote"),
            remote("echo"),
            remote("unused"),  # its dimension unknown until asked: see the dimensions test
        ],
        rate_limits=RateLimitSettings(
            requests_per_minute=100_000,
            ip_requests_per_minute=100_000,
            tokens_per_minute=TOKENS_PER_MINUTE,
        ),
    )
    with run_chatgate(settings) as url:
        yield Gateway(url=url, settings=settings, double=openai_double)


@pytest.fixture
async def client(
    gateway: Gateway, request: pytest.FixtureRequest
) -> AsyncIterator[openai.AsyncOpenAI]:
    """A client of a user of this test's own: each has its own token budget."""
    user = f"embed-{request.node.name[:40]}-{time.monotonic_ns()}"
    sdk = openai.AsyncOpenAI(
        base_url=f"{gateway.url}/v1", api_key=make_token(user), max_retries=0, timeout=120
    )
    yield sdk
    await sdk.close()


def unit(vector: Any) -> np.ndarray[Any, Any]:
    array = np.asarray(vector, dtype=np.float64)
    return array / np.linalg.norm(array)


async def test_bundled_model_answers_base64_that_decodes_to_the_float_answer(
    client: openai.AsyncOpenAI,
) -> None:
    texts = ["The warranty lasts two years.", "保修期为两年。"]
    as_floats = await client.embeddings.create(model="local", input=texts, encoding_format="float")
    # Without `encoding_format` the SDK asks for base64 and decodes it.
    raw = await client.embeddings.with_raw_response.create(model="local", input=texts)
    wire = raw.http_response.json()
    decoded = raw.parse()

    assert isinstance(wire["data"][0]["embedding"], str)
    assert set(wire) == {"object", "data", "model", "usage"}
    assert wire["object"] == "list" and wire["model"] == "local"
    assert [set(item) for item in wire["data"]] == [{"object", "index", "embedding"}] * 2
    for by_floats, by_base64 in zip(as_floats.data, decoded.data, strict=True):
        assert len(by_floats.embedding) == 384
        assert by_base64.embedding == by_floats.embedding  # the same float32 values, exactly
        assert np.linalg.norm(by_floats.embedding) == pytest.approx(1.0, abs=1e-5)
    # Little-endian float32, as OpenAI's.
    first = np.frombuffer(base64.b64decode(wire["data"][0]["embedding"]), dtype="<f4")
    assert first.tolist() == as_floats.data[0].embedding
    # Two texts that say the same in two languages are near; a different one is farther.
    other = await client.embeddings.create(model="local", input="The kettle is boiling.")
    same = np.dot(as_floats.data[0].embedding, as_floats.data[1].embedding)
    assert same > np.dot(as_floats.data[0].embedding, other.data[0].embedding)


async def test_a_list_keeps_its_order_and_indices(client: openai.AsyncOpenAI) -> None:
    texts = ["red apples", "a train timetable", "how to reset a router", "红苹果"]
    listed = await client.embeddings.create(model="local", input=texts)
    assert [item.index for item in listed.data] == [0, 1, 2, 3]
    for text, item in zip(texts, listed.data, strict=True):
        alone = await client.embeddings.create(model="local", input=text)
        assert np.allclose(item.embedding, alone.data[0].embedding, atol=1e-5)
    assert not np.allclose(listed.data[0].embedding, listed.data[1].embedding, atol=1e-3)


async def test_usage_counts_the_bundled_models_tokens(client: openai.AsyncOpenAI) -> None:
    short = await client.embeddings.create(model="local", input="hello world")
    long = await client.embeddings.create(model="local", input="hello world " * 20)
    both = await client.embeddings.create(model="local", input=["hello world", "hello world " * 20])
    assert 0 < short.usage.prompt_tokens < long.usage.prompt_tokens
    assert both.usage.prompt_tokens == short.usage.prompt_tokens + long.usage.prompt_tokens
    assert both.usage.total_tokens == both.usage.prompt_tokens


async def test_an_engine_embeds_through_its_own_api(
    client: openai.AsyncOpenAI, gateway: Gateway
) -> None:
    texts = ["alpha beta", "gamma", "alpha beta gamma delta"]
    answer = await client.embeddings.create(model="remote", input=texts, encoding_format="float")
    sent = gateway.double.api.embedding_requests[-1]
    assert sent["model"] == "double-embed-remote" and sent["input"] == texts
    assert answer.model == "remote"
    assert [item.index for item in answer.data] == [0, 1, 2]
    for text, item in zip(texts, answer.data, strict=True):
        # The double's vectors are not unit length; chatgate's are, in the same direction.
        expected = unit(OpenAIDouble.bag_of_words(text, 16))
        assert np.allclose(item.embedding, expected, atol=1e-6)
    assert answer.usage.prompt_tokens == sum(estimate_tokens(t) for t in texts)
    decoded = await client.embeddings.create(model="remote", input=texts)  # base64 on the wire
    assert [d.embedding for d in decoded.data] == [a.embedding for a in answer.data]


async def test_dimensions_is_honoured_only_as_the_embedders_own(
    client: openai.AsyncOpenAI,
) -> None:
    kept = await client.embeddings.create(model="local", input="x y", dimensions=384)
    assert len(kept.data[0].embedding) == 384
    remote = await client.embeddings.create(model="remote", input="x y", dimensions=16)
    assert len(remote.data[0].embedding) == 16
    # `unused` learns its dimension from this first answer, then refuses it.
    for model, dimensions in (("local", 256), ("remote", 8), ("unused", 8)):
        with pytest.raises(openai.BadRequestError) as info:
            await client.embeddings.create(model=model, input="x y", dimensions=dimensions)
        assert info.value.code == "unsupported_parameter"
        assert info.value.param == "dimensions"
        assert info.value.type == "invalid_request_error"


async def test_a_query_gets_the_bundled_models_query_prefix(client: openai.AsyncOpenAI) -> None:
    text = "how long is the warranty"
    passage = await client.embeddings.create(model="local", input=text)
    query = await client.embeddings.create(
        model="local", input=[text, text], extra_body={"input_type": "query"}
    )
    assert np.allclose(query.data[0].embedding, query.data[1].embedding, atol=1e-5)
    assert not np.allclose(query.data[0].embedding, passage.data[0].embedding, atol=1e-3)


async def test_models_list_the_embedders_beside_the_assistants(
    client: openai.AsyncOpenAI, gateway: Gateway
) -> None:
    ids = [m.id async for m in client.models.list()]
    assert {"local", "remote", "echo", "support", "helper"} <= set(ids)
    assert ids.count("echo") == 1  # an assistant and an embedder: one entry stands for both
    assert (await client.models.retrieve("remote")).id == "remote"
    with pytest.raises(openai.NotFoundError) as info:
        await client.models.retrieve("no-such-model")
    assert info.value.code == "model_not_found"
    # The shared id: chat means the assistant, embeddings the embedder.
    chat = await client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "hi"}]
    )
    assert chat.choices[0].message.content == "echo: hi"
    vectors = await client.embeddings.create(model="echo", input="hi")
    assert gateway.double.api.embedding_requests[-1]["model"] == "double-embed-echo"
    assert len(vectors.data[0].embedding) == 16


async def test_an_unknown_model_is_not_found(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await client.embeddings.create(model="text-embedding-3-small", input="x")
    assert info.value.status_code == 404 and info.value.code == "model_not_found"
    assert "text-embedding-3-small" not in info.value.message


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ([], "invalid_request"),
        ("", "invalid_request"),
        (["fine", ""], "invalid_request"),
        (["x"] * 2049, "invalid_request"),
        ([1, 2, 3], "unsupported_parameter"),
        ([[1, 2], [3]], "unsupported_parameter"),
        ({"text": "x"}, "invalid_request"),
    ],
    ids=[
        "empty-list",
        "empty-string",
        "empty-item",
        "2049-inputs",
        "tokens",
        "token-lists",
        "object",
    ],
)
async def test_refused_input_names_the_parameter(
    client: openai.AsyncOpenAI, given: Any, code: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.embeddings.create(model="local", input=given)
    assert info.value.status_code == 400
    assert info.value.code == code and info.value.param == "input"


async def test_2048_inputs_are_taken(client: openai.AsyncOpenAI) -> None:
    answer = await client.embeddings.create(model="remote", input=[f"w{i}" for i in range(2048)])
    assert [item.index for item in answer.data] == list(range(2048))


async def test_bad_parameters_are_openais_invalid_request(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.embeddings.create(
            model="local",
            input="x",
            encoding_format="float16",  # type: ignore[arg-type]
        )
    assert info.value.code == "invalid_request" and info.value.param == "encoding_format"
    with pytest.raises(openai.BadRequestError) as info:
        await client.embeddings.create(model="local", input="x", dimensions=0)
    assert info.value.param == "dimensions"


async def test_a_body_over_the_cap_is_refused_unread(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        await client.embeddings.create(model="local", input=["word " * 120_000] * 2)
    assert info.value.status_code == 413 and info.value.code == "too_large"


async def test_callers_are_authenticated(gateway: Gateway) -> None:
    stranger = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        await stranger.embeddings.create(model="local", input="x")
    assert info.value.code == "invalid_token"
    await stranger.close()


async def test_the_token_budget_applies(client: openai.AsyncOpenAI) -> None:
    used = 0
    with pytest.raises(openai.RateLimitError) as info:
        for _ in range(20):
            answer = await client.embeddings.create(model="remote", input=["lorem ipsum " * 1000])
            used += answer.usage.total_tokens
    assert info.value.code == "tokens_rate_limited"
    assert info.value.response.headers["retry-after"]
    assert 0 < used <= TOKENS_PER_MINUTE


async def test_the_event_loop_answers_while_the_bundled_model_works(
    client: openai.AsyncOpenAI, gateway: Gateway
) -> None:
    texts = [
        f"passage {i}: " + "the quick brown fox jumps over the lazy dog " * 15 for i in range(4)
    ]
    work = asyncio.create_task(
        client.embeddings.create(model="local", input=texts, encoding_format="float")
    )
    waits = []
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        while not work.done():
            started = time.monotonic()
            assert (await http.get("/health")).status_code == 200
            waits.append(time.monotonic() - started)
            await asyncio.sleep(0.02)
    answer = await work
    assert len(answer.data) == 4
    assert len(waits) >= 3 and max(waits) < 0.5, waits
