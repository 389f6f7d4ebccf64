"""The embedders: an OpenAI-compatible service (the double, over real HTTP) and the bundled
model, behind one interface, every vector of unit length."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from chatgate.core.config import EmbedderConfig, Settings
from chatgate.core.engine_config import EmbedderTimeouts
from chatgate.knowledge.embedders import (
    Embedders,
    LocalEmbedder,
    OpenAIEmbedder,
    UnknownEmbedder,
    vector_bytes,
    vector_from_bytes,
)
from chatgate.providers.base import ProviderError, ProviderRateLimited, ProviderTimeout
from tests.conftest import Double
from tests.doubles.server import free_port


def openai_config(url: str, **fields: object) -> EmbedderConfig:
    values: dict[str, object] = {
        "id": "remote",
        "type": "openai",
        "base_url": f"{url}/v1",
        "api_key_env": "EMBEDDER_TEST_KEY",
        "model": "text-embedding-3-small",
        **fields,
    }
    return EmbedderConfig.model_validate(values)


@pytest.fixture
async def remote(
    openai_double: Double, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[OpenAIEmbedder]:
    monkeypatch.setenv("EMBEDDER_TEST_KEY", "sk-double")
    embedder = OpenAIEmbedder(openai_config(openai_double.url, batch_size=3))
    await embedder.start()
    yield embedder
    await embedder.close()


def unit(vector: np.ndarray) -> list[float]:
    return list(vector / np.linalg.norm(vector))


async def test_documents_go_in_batches_and_come_back_in_order_of_unit_length(
    remote: OpenAIEmbedder, openai_double: Double
) -> None:
    texts = [f"passage number {i} about refunds" for i in range(7)]
    sent = len(openai_double.api.embedding_requests)
    assert remote.id == "openai:remote:text-embedding-3-small" and remote.dimension == 0

    vectors = await remote.embed_documents(texts)

    requests = openai_double.api.embedding_requests[sent:]
    assert [len(r["input"]) for r in requests] == [3, 3, 1]
    assert requests[0]["model"] == "text-embedding-3-small"
    assert requests[0]["encoding_format"] == "float"
    assert [t for r in requests for t in r["input"]] == texts
    assert remote.dimension == openai_double.api.embedding_dimension == len(vectors[0])
    for text, vector in zip(texts, vectors, strict=True):
        # The double's vectors are not of unit length: the embedder normalised them.
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)
        expected = unit(openai_double.api.bag_of_words(text, remote.dimension))
        assert vector == pytest.approx(expected, abs=1e-6)
    query = await remote.embed_query("passage number 3 about refunds")
    assert query == pytest.approx(vectors[3], abs=1e-6)
    stored = vector_bytes(query)
    assert len(stored) == 4 * remote.dimension
    assert list(vector_from_bytes(stored)) == pytest.approx(query, abs=1e-7)
    assert await remote.embed_documents([]) == []


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (429, ProviderRateLimited, "upstream_rate_limited"),
        (401, ProviderError, "upstream_auth_failed"),
        (400, ProviderError, "upstream_rejected"),
        (500, ProviderError, "upstream_error"),
    ],
)
async def test_an_error_status_is_chatgates_provider_error(
    remote: OpenAIEmbedder, status: int, error: type[ProviderError], code: str
) -> None:
    with pytest.raises(error) as caught:
        await remote.embed_documents(["fine", f"[[status {status}]]"])
    assert caught.value.code == code
    assert f"embedder 'remote' answered {status}: The double was told" in caught.value.message
    if status == 429:
        assert caught.value.headers == {"Retry-After": "2"}


async def test_a_wrong_key_is_an_auth_failure(
    openai_double: Double, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDDER_TEST_KEY", "sk-wrong")
    embedder = OpenAIEmbedder(openai_config(openai_double.url))
    await embedder.start()
    try:
        with pytest.raises(ProviderError) as caught:
            await embedder.embed_query("hello")
        assert caught.value.code == "upstream_auth_failed"
    finally:
        await embedder.close()


async def test_a_service_that_does_not_answer_times_out(
    openai_double: Double, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDDER_TEST_KEY", "sk-double")
    timeouts = EmbedderTimeouts(connect=1, total=0.3)
    embedder = OpenAIEmbedder(openai_config(openai_double.url, timeouts=timeouts))
    await embedder.start()
    try:
        started = time.perf_counter()
        with pytest.raises(ProviderTimeout) as caught:
            await embedder.embed_query("[[hang]]")
        assert 0.3 <= time.perf_counter() - started < 2
        assert caught.value.code == "upstream_timeout"
    finally:
        await embedder.close()


async def test_a_service_that_cannot_be_reached_is_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EMBEDDER_TEST_KEY", "sk-double")
    embedder = OpenAIEmbedder(openai_config(f"http://127.0.0.1:{free_port()}"))
    await embedder.start()
    try:
        with pytest.raises(ProviderError) as caught:
            await embedder.embed_query("hello")
        assert caught.value.code == "upstream_unavailable"
        assert "127.0.0.1" not in caught.value.message
    finally:
        await embedder.close()


async def test_vectors_of_another_dimension_than_configured_are_refused(
    openai_double: Double, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDDER_TEST_KEY", "sk-double")
    embedder = OpenAIEmbedder(openai_config(openai_double.url, dimension=1536))
    await embedder.start()
    try:
        assert embedder.dimension == 1536
        with pytest.raises(ProviderError, match="16 dimensions, not the 1536 configured"):
            await embedder.embed_query("hello")
    finally:
        await embedder.close()


def test_the_bundled_model_is_the_default_when_none_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    embedders = Embedders.build(Settings())
    default = embedders.get()
    assert isinstance(default, LocalEmbedder)
    assert default.id == "local:multilingual-e5-small" and default.dimension == 384
    assert embedders.get("local") is embedders.get(default.id) is default
    with pytest.raises(UnknownEmbedder) as caught:
        embedders.get("nope")
    assert (caught.value.status, caught.value.code) == (400, "unknown_embedder")

    monkeypatch.setenv("EMBEDDER_TEST_KEY", "sk-double")
    remote = {"id": "remote", "type": "openai", "base_url": "http://x/v1", "model": "m"}
    settings = Settings(
        embedders=[{"id": "local", "type": "local"}, remote],  # type: ignore[list-item]
        default_embedder="remote",
    )
    embedders = Embedders.build(settings)
    assert embedders.get().id == "openai:remote:m"
    assert [e.id for e in embedders.all()] == ["local:multilingual-e5-small", "openai:remote:m"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"embedders": [{"id": "r", "type": "openai", "model": "m"}]}, "needs a base_url"),
        ({"embedders": []}, "at least one is needed"),
        ({"default_embedder": "nope"}, "is not an embedder"),
    ],
)
def test_bad_embedder_settings_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.model_validate(fields)


@pytest.fixture(scope="module")
async def local() -> AsyncIterator[LocalEmbedder]:
    embedder = LocalEmbedder(EmbedderConfig(id="local", type="local", batch_size=4))
    await embedder.start()
    yield embedder
    await embedder.close()


@pytest.mark.parametrize(
    ("query", "answer", "other"),
    [
        (
            "退款一般几天能到账？",
            "仓库收到退回的包裹后，款项会在5到7个工作日内原路退回到您的支付账户。",
            "员工每月可领取50元公共交通补贴。",
        ),
        (
            "How long does the headphone battery last?",
            "The wireless headset plays music for up to 30 hours on one charge.",
            "The headphones are available in black, white and midnight blue.",
        ),
    ],
)
async def test_the_bundled_model_ranks_the_answering_passage_first(
    local: LocalEmbedder, query: str, answer: str, other: str
) -> None:
    passages = np.asarray(await local.embed_documents([answer, other]))
    question = np.asarray(await local.embed_query(query))
    assert passages.shape == (2, local.dimension) == (2, 384)
    assert np.linalg.norm(passages, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    scores = passages @ question
    assert scores[0] > scores[1], scores


async def test_the_bundled_model_embeds_a_batch_as_it_embeds_each_text(
    local: LocalEmbedder,
) -> None:
    texts = [f"第{i}章：退货政策 return policy, chapter {i}" * (i + 1) for i in range(6)]
    together = await local.embed_documents(texts)  # two batches of 4 and 2
    for text, vector in zip(texts, together, strict=True):
        assert (await local.embed_documents([text]))[0] == pytest.approx(vector, abs=1e-5)
    # A query is embedded with e5's "query: " prefix, a passage with "passage: ".
    assert await local.embed_query(texts[0]) != pytest.approx(together[0], abs=1e-3)


async def test_the_bundled_model_counts_tokens_with_its_own_tokenizer(
    local: LocalEmbedder,
) -> None:
    assert local.count_tokens("") == 0
    assert 0 < local.count_tokens("退款一般几天能到账？") < 12
    # The tokens the model reads for a passage: e5's "passage: " prefix, then the text.
    assert local.count_tokens(" ".join(["refund"] * 100)) == local.count_tokens("refund") + 99


async def test_the_bundled_model_does_not_block_the_event_loop(local: LocalEmbedder) -> None:
    passages = [
        f"{i} " + "退货政策：商品签收后30天内可以退货。Returns within 30 days. " * 8
        for i in range(6)
    ]
    longest, last = 0.0, time.perf_counter()
    started = last
    work = asyncio.ensure_future(local.embed_documents(passages))
    while not work.done():
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    took = time.perf_counter() - started
    assert len(await work) == 6
    assert took > 0.2  # long enough for a stall to show
    assert longest < 0.05, (longest, took)
