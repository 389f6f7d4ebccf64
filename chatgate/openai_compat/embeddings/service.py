"""The embeddings of a request, in OpenAI's answer; the embedders as OpenAI's models. What
chatgate decides where OpenAI's API leaves room is in this package's docstring."""

from __future__ import annotations

import asyncio
import base64
from functools import partial
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from chatgate.budgets.service import Budgets
from chatgate.core.config import Settings
from chatgate.core.errors import AppError, NotFound
from chatgate.knowledge.embedders import Embedder, Embedders, UnknownEmbedder, vector_bytes
from chatgate.providers.base import Usage
from chatgate.ratelimit.service import RateLimiter
from chatgate.usage.ledger import Ledger

MAX_INPUTS = 2048  # OpenAI's own limit on the texts of one request

Encoding = Literal["float", "base64"]


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, description="an embedder's configured id")
    # Checked by `texts_of`, which names what is wrong with it in OpenAI's terms.
    input: Any = Field(description="a string, or a list of 1 to 2048 non-empty strings")
    encoding_format: Encoding = "float"
    dimensions: int | None = Field(None, ge=1, description="only the embedder's own dimension")
    user: str | None = Field(
        None, max_length=255, description="the end user a service key acts for"
    )
    input_type: Literal["passage", "query"] = Field(
        "passage", description="chatgate's: the bundled model's e5 prefix (engines ignore it)"
    )


class RefusedParameter(AppError):
    """A 400 naming the parameter, as OpenAI's `param` (`openai_compat/errors.py` reads it)."""

    status, code = 400, "invalid_request"

    def __init__(self, message: str, *, param: str, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.param = param


def texts_of(value: Any) -> list[str]:
    """The request's `input` as a list of texts, or why it is refused."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise RefusedParameter("input must be a string or a list of strings", param="input")
    if not items:
        raise RefusedParameter("input must hold at least one text", param="input")
    if len(items) > MAX_INPUTS:
        raise RefusedParameter(f"input holds more than {MAX_INPUTS} texts", param="input")
    if any(isinstance(item, list) or type(item) is int for item in items):
        raise RefusedParameter(
            "token arrays are not accepted: chatgate's embedders read text",
            param="input",
            code="unsupported_parameter",
        )
    if not all(isinstance(item, str) for item in items):
        raise RefusedParameter("input must be a string or a list of strings", param="input")
    if not all(items):
        raise RefusedParameter("input must not hold an empty string", param="input")
    return items


def embedder_for_model(embedders: Embedders, model: str) -> Embedder:
    try:
        return embedders.get(model)
    except UnknownEmbedder:
        # Without the name asked for, as every chatgate error (docs/api.md, "Error codes").
        raise NotFound(
            "no model has this name (GET /v1/models lists them)", code="model_not_found"
        ) from None


def _refuse_dimensions(embedder: Embedder) -> RefusedParameter:
    return RefusedParameter(
        f"this model's vectors have {embedder.dimension} dimensions, and it cannot make others",
        param="dimensions",
        code="unsupported_parameter",
    )


def _count_tokens(embedder: Embedder, texts: list[str]) -> int:
    # In a thread: the bundled model's tokenizer may still be loading, and 2048 texts take a while.
    return sum(embedder.count_tokens(text) for text in texts)


async def _embed(embedder: Embedder, texts: list[str], *, as_query: bool) -> list[list[float]]:
    """Off the event loop: the bundled model runs on its own thread, an engine over HTTP."""
    if not as_query:
        return await embedder.embed_documents(texts)  # in batches other callers' queries pass
    return [await embedder.embed_query(text) for text in texts]


def embedding_list(
    vectors: list[list[float]], *, model: str, encoding: Encoding, tokens: int
) -> bytes:
    """OpenAI's answer, as JSON: base64 is the little-endian float32 bytes of each vector."""

    def encoded(vector: list[float]) -> list[float] | str:
        if encoding == "base64":
            return base64.b64encode(vector_bytes(vector)).decode("ascii")
        return vector

    data = [
        {"object": "embedding", "index": i, "embedding": encoded(v)} for i, v in enumerate(vectors)
    ]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage})


async def create_embeddings(
    body: EmbeddingRequest,
    *,
    embedders: Embedders,
    limiter: RateLimiter,
    ledger: Ledger,
    user_id: str,
    key_id: str | None,
    budgets: Budgets | None = None,
) -> bytes:
    """The embeddings of `body` as OpenAI's JSON answer, charged to the user's token budget
    with this embedder (kept apart from the assistants' by the `embedder:` prefix, which no
    assistant id can have), and noted in the usage ledger as the embedder's (its configured id
    as the engine, its model as the model: the part of its stable id after the last colon)."""
    texts = texts_of(body.input)
    embedder = embedder_for_model(embedders, body.model)
    wanted = body.dimensions
    if wanted is not None and embedder.dimension and wanted != embedder.dimension:
        raise _refuse_dimensions(embedder)
    tokens = await asyncio.to_thread(_count_tokens, embedder, texts)
    budget = f"embedder:{embedder.id}"
    await limiter.check_tokens(user=user_id, assistant=budget, estimate=tokens)
    reservation = None
    if budgets is not None:
        reservation = await budgets.reserve_for(
            user_id=user_id, key_id=key_id, model=embedder.id.rsplit(":", 1)[-1],
            prompt_tokens=tokens, answer_tokens=0,
        )  # fmt: skip
    embedded = False
    try:
        vectors = await _embed(embedder, texts, as_query=body.input_type == "query")
        embedded = True
    finally:
        if budgets is not None:  # the prompt tokens only, and nothing when it failed
            used = Usage(prompt_tokens=tokens) if embedded else None
            await asyncio.shield(budgets.settle(reservation, used))
    await limiter.record_tokens(user=user_id, assistant=budget, tokens=tokens)
    ledger.record(
        user_id=user_id, key_id=key_id, assistant_id=None, route="embeddings",
        engine=body.model, model=embedder.id.rsplit(":", 1)[-1], prompt_tokens=tokens,
        completion_tokens=0,
    )  # fmt: skip
    if wanted is not None and len(vectors[0]) != wanted:  # an engine's, learned just now
        raise _refuse_dimensions(embedder)
    # In a thread too: 2048 vectors take tens of milliseconds to encode.
    return await asyncio.to_thread(
        partial(embedding_list, model=body.model, encoding=body.encoding_format, tokens=tokens),
        vectors,
    )


def embedder_models(settings: Settings, *, taken: set[str]) -> list[dict[str, Any]]:
    """The embedders as OpenAI model objects, by their configured ids. An id an assistant
    already has is left out: one entry stands for both, the chat routes meaning the assistant
    and `/v1/embeddings` the embedder."""
    return [_model(e.id) for e in settings.embedders if e.id not in taken]


def embedder_model(settings: Settings, model_id: str) -> dict[str, Any] | None:
    return _model(model_id) if any(e.id == model_id for e in settings.embedders) else None


def _model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "chatgate"}
