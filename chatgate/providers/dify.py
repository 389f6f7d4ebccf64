"""A Dify app through Dify's Service API: `chat-messages` or `completion-messages`, blocking or
streaming.

A Dify chat app keeps its own conversation memory, so a turn sends only the new query with the
`conversation_id` kept on the chatgate session; the history chatgate holds and the assistant's
system prompt are not sent (the app's own prompt applies). Dify learns who is asking from
`user`, which is the chatgate user, and a stop names the same user.

The caller's `inputs` (the app's input variables) are sent as given. The app's
`retriever_resources` (in `message_end`'s metadata, or a blocking answer's) become citations in
API.md's shape: `text` is the segment's content, `page` is null, and `document_id`/`chunk_id`
are Dify's document and segment ids as strings (UUIDs in Dify today, but not promised).

`response_mode` follows the provider's `stream` setting only, never the caller's wish for one
piece: Dify's agent apps cannot answer blocking, and a blocking answer cannot be stopped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from chatgate.core.config import ProviderConfig
from chatgate.providers.base import (
    Chunk,
    CompletionRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
    Usage,
)
from chatgate.providers.http import HttpCall, HttpProvider

log = logging.getLogger("chatgate.providers.dify")

STOP_TIMEOUT = 5.0
ANONYMOUS_USER = "chatgate"

# Dify's error codes (published for chat-messages and completion-messages) -> chatgate's.
_ERROR_CODES: dict[str, tuple[type[ProviderError], str]] = {
    "invalid_param": (ProviderError, "upstream_rejected"),
    "app_unavailable": (ProviderUnavailable, "upstream_app_unavailable"),
    "provider_not_initialize": (ProviderUnavailable, "upstream_not_configured"),
    "provider_quota_exceeded": (ProviderUnavailable, "upstream_quota_exceeded"),
    "model_currently_not_support": (ProviderUnavailable, "upstream_model_unavailable"),
    "completion_request_error": (ProviderError, "upstream_error"),
    "unauthorized": (ProviderError, "upstream_auth_failed"),
}


class ConversationLost(ProviderError):
    """The app no longer has the session's conversation; the next turn starts a new one."""

    status, code = 502, "upstream_conversation_lost"


class DifyProvider(HttpProvider["_Run"]):
    kind = "Dify app"

    def __init__(self, config: ProviderConfig) -> None:
        self._is_chat = config.dify_app_type == "chat"
        super().__init__(config, "/chat-messages" if self._is_chat else "/completion-messages")
        # Stop requests still on their way; kept so they are neither collected nor cut short.
        self._stops: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        if self._stops:
            await asyncio.wait(self._stops, timeout=STOP_TIMEOUT)
        await super().close()

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _call(self, request: CompletionRequest) -> _Run:
        conversation_id = request.session_state.get("conversation_id", "") if self._is_chat else ""
        return _Run(
            self.config.stream,
            subject=self.subject,
            is_chat=self._is_chat,
            user=request.user or ANONYMOUS_USER,
            conversation_id=conversation_id,
        )

    def _body(self, request: CompletionRequest, call: _Run) -> dict[str, Any]:
        query = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        body: dict[str, Any] = {
            "inputs": dict(request.inputs),
            "query": query,
            "response_mode": "streaming" if call.streams else "blocking",
            "user": call.user,
        }
        if self._is_chat:
            body["conversation_id"] = call.conversation_id
        else:
            # A completion app takes its text as the `query` input variable.
            body["inputs"] = {**request.inputs, "query": query}
        return body

    async def _error_from_response(
        self, response: aiohttp.ClientResponse, call: _Run
    ) -> ProviderError:
        try:
            body = orjson.loads(await response.read())
            code, message = str(body.get("code") or ""), str(body.get("message") or "")
        except (orjson.JSONDecodeError, AttributeError):
            code, message = "", ""
        return call.error(
            response.status, code, message, retry_after=response.headers.get("Retry-After")
        )

    def _ended(self, call: _Run) -> None:
        if call.task_id and not call.finished:
            # Stopped, timed out or cut off: the app would go on generating (and billing) an
            # answer nobody reads.
            self._stop_later(call)

    def _last_words(self, call: _Run, error: ProviderError) -> Chunk | None:
        # The session's conversation is gone: forget it, so the next turn starts a new one.
        if isinstance(error, ConversationLost):
            return Chunk(session_state={"conversation_id": ""})
        return None

    def _stop_later(self, run: _Run) -> None:
        try:
            task = asyncio.get_running_loop().create_task(self._stop(run))
        except RuntimeError:  # no loop left (the process is ending): nothing can be sent
            return
        self._stops.add(task)
        task.add_done_callback(self._stops.discard)

    async def _stop(self, run: _Run) -> None:
        assert self._http is not None and run.task_id
        url = f"{self._url}/{quote(run.task_id, safe='')}/stop"
        try:
            async with (
                asyncio.timeout(STOP_TIMEOUT),
                self._http.post(
                    url, data=orjson.dumps({"user": run.user}), headers=self._headers(None)
                ) as response,
            ):
                if response.status >= 400:
                    log.warning(
                        "Dify app %r refused to stop task %s: %s",
                        self.id,
                        run.task_id,
                        response.status,
                    )
        except (TimeoutError, aiohttp.ClientError, RuntimeError) as exc:
            log.warning("could not stop task %s of Dify app %r: %r", run.task_id, self.id, exc)


class _Run(HttpCall):
    """One call: what it has learnt from Dify so far, and how Dify's events become chunks."""

    def __init__(
        self, streams: bool, *, subject: str, is_chat: bool, user: str, conversation_id: str
    ) -> None:
        super().__init__(streams)
        self.subject = subject
        self.is_chat = is_chat
        self.user = user
        self.conversation_id = conversation_id
        self.task_id: str | None = None

    def _learn(self, event: dict[str, Any], chunk: Chunk) -> None:
        """Notes the task id (for a stop) and a new conversation id (to keep on the session)."""
        self.task_id = event.get("task_id") or self.task_id
        conversation_id = event.get("conversation_id")
        if self.is_chat and conversation_id and conversation_id != self.conversation_id:
            self.conversation_id = conversation_id
            chunk.session_state = {"conversation_id": conversation_id}

    def feed(self, line: bytes) -> Chunk | None:
        line = line.strip()
        # Blank separators and Dify's own `event: ping` keep-alive lines carry nothing.
        if not line.startswith(b"data:"):
            return None
        event = _json_object(line[5:])
        chunk = Chunk()
        self._learn(event, chunk)
        kind = event.get("event")
        if kind in ("message", "agent_message"):
            chunk.text = event.get("answer") or ""
        elif kind == "message_replace":
            chunk.text, chunk.replace = event.get("answer") or "", True
        elif kind == "message_end":
            self.finished = True
            chunk.usage = _usage(event.get("metadata"))
            chunk.citations = _citations(event.get("metadata"))
            chunk.finish_reason = "stop"
        elif kind == "error":
            self.finished = True
            raise self.error(
                int(event.get("status") or 500),
                str(event.get("code") or ""),
                str(event.get("message") or ""),
            )
        # ping, workflow_*, node_*, agent_thought, message_file, tts_*: no answer text.
        if chunk.text or chunk.replace or chunk.usage or chunk.session_state or chunk.citations:
            return chunk
        return None

    def whole(self, body: bytes) -> Chunk:
        answer = _json_object(body)
        chunk = Chunk(
            text=answer.get("answer") or "",
            usage=_usage(answer.get("metadata")),
            finish_reason="stop",
            citations=_citations(answer.get("metadata")),
        )
        self._learn(answer, chunk)
        self.finished = True
        return chunk

    def error(
        self, status: int, code: str, message: str, retry_after: str | None = None
    ) -> ProviderError:
        text = f"{self.subject} answered {status}" + (f" {code}" if code else "")
        text += f": {message}" if message else ""
        lost = code == "conversation_completed" or (
            status == 404 and "conversation" in message.lower()
        )
        if lost and self.conversation_id:
            return ConversationLost(
                f"{self.subject} no longer has this session's conversation ({message}); "
                "the next message starts a new one"
            )
        if status == 429:
            return ProviderRateLimited(text, headers={"Retry-After": retry_after or "1"})
        if code in _ERROR_CODES:
            kind, our_code = _ERROR_CODES[code]
            return kind(text, code=our_code)
        if status in (401, 403):
            return ProviderError(text, code="upstream_auth_failed")
        if status == 503:
            return ProviderUnavailable(text)
        if status >= 500:
            return ProviderError(text)
        return ProviderError(text, code="upstream_rejected")


def _usage(metadata: Any) -> Usage | None:
    usage = (metadata or {}).get("usage") if isinstance(metadata, dict) else None
    if not usage:
        return None
    return Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


def _citations(metadata: Any) -> list[dict[str, Any]] | None:
    """A Dify app's retriever resources as citations; None when it sent none."""
    resources = metadata.get("retriever_resources") if isinstance(metadata, dict) else None
    if not isinstance(resources, list) or not resources:
        return None
    found = [r for r in resources if isinstance(r, dict)]
    found.sort(key=lambda r: p if isinstance(p := r.get("position"), int) else 0)
    return [
        {
            "index": i,
            "document_id": str(r.get("document_id") or ""),
            "document_name": str(r.get("document_name") or ""),
            "chunk_id": str(r.get("segment_id") or ""),
            "page": None,
            "score": _score(r.get("score")),
            "text": str(r.get("content") or ""),
        }
        for i, r in enumerate(found, start=1)
    ]


def _score(value: Any) -> float:
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0


def _json_object(raw: bytes) -> dict[str, Any]:
    value = orjson.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value
