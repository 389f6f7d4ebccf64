"""A stand-in for a Dify app's Service API (`chat-messages`, `completion-messages` and their
`stop` endpoints), following Dify's published request, stream and error formats. Like Dify it
keeps each conversation's memory, per user. What it does is chosen by a directive in the query:

  [[slow N SECONDS]]           stream N message events, SECONDS apart, until told to stop
  [[die-after N]]              stream N message events, then drop the connection
  [[status CODE [NAME]]]       an HTTP error in Dify's shape {"code", "message", "status"}
  [[error-after N NAME]]       stream N message events, then an `error` event
  [[replace]]                  stream some text, then a `message_replace` (output moderation)
  [[agent]]                    an agent app: `agent_thought` events around `agent_message` text
  [[workflow]]                 a chatflow: workflow and node events around the text
  [[ping]]                     `event: ping` keep-alives before and between events
  [[doc-example]]              events as the docs' example shows them: no `task_id`, and a
                               `message_end` with `id` where the text says `message_id`
  [[recall]]                   answer with the earlier queries of this conversation
  [[cite]]                     the app's knowledge retrieval: `retriever_resources` in the
                               metadata (message_end, or the blocking answer), listed in an
                               order other than their `position`, as Dify's docs show them
  [[hang]]                     never answer
otherwise it answers "echo: <the query>", a word per event.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

DIRECTIVE = re.compile(r"\[\[(\w[\w-]*)((?:\s+[\w.]+)*)\]\]")
# Dify's published error codes with the status and message it sends them with.
ERRORS = {
    "invalid_param": (400, "Invalid parameter."),
    "app_unavailable": (400, "App unavailable, please check your app configurations."),
    "provider_not_initialize": (400, "No valid model provider credentials found."),
    "provider_quota_exceeded": (400, "Your quota for the model provider has been exhausted."),
    "model_currently_not_support": (400, "The model is currently not supported."),
    "completion_request_error": (400, "Completion request failed."),
    "conversation_completed": (400, "The conversation has ended. Start a new conversation."),
    "unauthorized": (401, "Access token is invalid"),
    "not_found": (404, "Not Found."),
    "rate_limit_error": (429, "Rate Limit Error"),
    "internal_server_error": (500, "The server encountered an internal error."),
}
DEFAULT_NAMES = {
    400: "invalid_param",
    401: "unauthorized",
    404: "not_found",
    429: "rate_limit_error",
}
REPLACEMENT = "Sorry, I cannot talk about that."
# What a Dify app's knowledge retrieval reports (its published `retriever_resources` fields).
RETRIEVER_RESOURCES = [
    {
        "position": 2, "dataset_id": "101b4c97-fc2e-463c-90b1-5261a4cdcafb",
        "dataset_name": "Manuals", "document_id": "8dd1ad74-0b5f-4175-b735-7d98bbbb4e00",
        "document_name": "kettle.pdf", "segment_id": "segment-2",
        "score": 0.71, "content": "Descale the kettle monthly.",
    },
    {
        "position": 1, "dataset_id": "101b4c97-fc2e-463c-90b1-5261a4cdcafb",
        "dataset_name": "Manuals", "document_id": "8dd1ad74-0b5f-4175-b735-7d98bbbb4e00",
        "document_name": "kettle.pdf", "segment_id": "ed599c7f-2f2e-4a7b-8d2a-31c1a8f2b3f4",
        "score": 0.98, "content": "The warranty lasts three years.",
    },
]  # fmt: skip


async def hang(request: web.Request) -> None:
    """Never answers, until the caller gives up (so no handler outlives the test)."""
    # aiohttp offers a handler no event for a disconnect, so it looks.
    while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
        await asyncio.sleep(0.05)


@dataclass
class Conversation:
    id: str
    user: str
    queries: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)


@dataclass
class Task:
    id: str
    user: str
    stopped: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class DifyDouble:
    api_key: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    conversations: dict[str, Conversation] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    # Every stop call: {"task_id", "user", "stopped"}; stopped is False for an unknown task or
    # another user's, which Dify ignores without saying so.
    stops: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat-messages", self.chat_messages)
        app.router.add_post("/v1/completion-messages", self.completion_messages)
        app.router.add_post("/v1/chat-messages/{task_id}/stop", self.stop)
        app.router.add_post("/v1/completion-messages/{task_id}/stop", self.stop)
        return app

    def forget(self, conversation_id: str) -> None:
        """Deletes a conversation, as a Dify operator might."""
        self.conversations.pop(conversation_id, None)

    @staticmethod
    def error(status: int, name: str | None = None, message: str | None = None) -> web.Response:
        name = name or DEFAULT_NAMES.get(status, "internal_server_error")
        message = message or ERRORS.get(name, (status, "Error."))[1]
        body = {"code": name, "message": message, "status": status}
        return web.json_response(body, status=status)

    def _refused(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return self.error(
                401, "unauthorized", "Authorization header must be provided and start with Bearer"
            )
        if self.api_key and auth != f"Bearer {self.api_key}":
            return self.error(401)
        return None

    async def _read(self, request: web.Request) -> dict[str, Any] | web.Response:
        if refused := self._refused(request):
            return refused
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return self.error(400, "invalid_param", "The request body is not valid JSON.")
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if not isinstance(body.get("inputs"), dict):
            return self.error(400, "invalid_param", "inputs is required and must be an object")
        if not body.get("user"):
            return self.error(400, "invalid_param", "user is required")
        if body.get("response_mode") not in ("streaming", "blocking"):
            return self.error(400, "invalid_param", "response_mode must be streaming or blocking")
        return body

    async def chat_messages(self, request: web.Request) -> web.StreamResponse:
        body = await self._read(request)
        if isinstance(body, web.Response):
            return body
        query = body.get("query")
        if not query:
            return self.error(400, "invalid_param", "query is required")
        conversation_id = body.get("conversation_id") or ""
        if conversation_id:
            conversation = self.conversations.get(conversation_id)
            # A conversation belongs to the user who started it.
            if conversation is None or conversation.user != body["user"]:
                return self.error(404, "not_found", "Conversation Not Exists.")
        else:
            conversation = Conversation(id=str(uuid.uuid4()), user=body["user"])
            self.conversations[conversation.id] = conversation
        return await self._answer(request, body, query, conversation)

    async def completion_messages(self, request: web.Request) -> web.StreamResponse:
        body = await self._read(request)
        if isinstance(body, web.Response):
            return body
        query = body["inputs"].get("query")
        if not query:
            return self.error(400, "invalid_param", "query is required in input form")
        return await self._answer(request, body, query, None)

    async def stop(self, request: web.Request) -> web.Response:
        if refused := self._refused(request):
            return refused
        body = await request.json()
        if not body.get("user"):
            return self.error(400, "invalid_param", "user is required")
        task = self.tasks.get(request.match_info["task_id"])
        stopped = task is not None and task.user == body["user"]
        self.stops.append(
            {"task_id": request.match_info["task_id"], "user": body["user"], "stopped": stopped}
        )
        if task is not None and stopped:
            task.stopped.set()
        return web.json_response({"result": "success"})

    async def _answer(
        self,
        request: web.Request,
        body: dict[str, Any],
        query: str,
        conversation: Conversation | None,
    ) -> web.StreamResponse:
        match = DIRECTIVE.search(query)
        name, args = (match.group(1), match.group(2).split()) if match else ("echo", [])
        if name == "status":
            status = int(args[0])
            return self.error(status, args[1] if len(args) > 1 else None)
        if name == "hang":
            await hang(request)
        if name in ("slow", "die-after", "error-after"):
            words = [f"w{i} " for i in range(int(args[0]))]
        elif name == "recall" and conversation is not None:
            words = ("you said: " + " | ".join(conversation.queries or ["nothing"])).split(" ")
        else:
            words = f"echo: {query}".split(" ")
        pieces = [
            w if w.endswith(" ") or i == len(words) - 1 else w + " " for i, w in enumerate(words)
        ]
        task = Task(id=str(uuid.uuid4()), user=body["user"])
        self.tasks[task.id] = task
        run = _Run(self, request, body, query, conversation, task, name, args, pieces)
        if body["response_mode"] == "blocking":
            return await run.blocking()
        return await run.streaming()


@dataclass
class _Run:
    """One answer being produced, in the shape its directive asks for."""

    double: DifyDouble
    request: web.Request
    body: dict[str, Any]
    query: str
    conversation: Conversation | None
    task: Task
    name: str
    args: list[str]
    pieces: list[str]
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: int = field(default_factory=lambda: int(time.time()))

    def remember(self, answer: str) -> None:
        if self.conversation is not None:
            self.conversation.queries.append(self.query)
            self.conversation.answers.append(answer)

    def usage(self) -> dict[str, Any]:
        prompt = len(self.query.split()) + sum(
            len(q.split()) for q in (self.conversation.queries if self.conversation else [])
        )
        completion = len(self.pieces)
        return {
            "prompt_tokens": prompt,
            "prompt_unit_price": "0.001",
            "prompt_price_unit": "0.001",
            "prompt_price": f"{prompt * 0.000001:.7f}",
            "completion_tokens": completion,
            "completion_unit_price": "0.002",
            "completion_price_unit": "0.001",
            "completion_price": f"{completion * 0.000002:.7f}",
            "total_tokens": prompt + completion,
            "total_price": f"{prompt * 0.000001 + completion * 0.000002:.7f}",
            "currency": "USD",
            "latency": 0.01,
        }

    def resources(self) -> list[dict[str, Any]]:
        return RETRIEVER_RESOURCES if self.name == "cite" else []

    def fields(self) -> dict[str, Any]:
        """What every event about this message carries, as Dify sends it."""
        conversation = {"conversation_id": self.conversation.id} if self.conversation else {}
        if self.name == "doc-example":
            return {"message_id": self.message_id, **conversation, "created_at": self.created_at}
        return {
            **conversation,
            "task_id": self.task.id,
            "id": self.message_id,
            "message_id": self.message_id,
            "created_at": self.created_at,
        }

    async def blocking(self) -> web.StreamResponse:
        if self.name == "die-after":
            assert self.request.transport is not None
            self.request.transport.close()
            return web.Response()
        if self.name == "error-after":
            return self.double.error(400, self.args[1] if len(self.args) > 1 else None)
        answer = REPLACEMENT if self.name == "replace" else "".join(self.pieces)
        body = {
            "event": "message",
            **self.fields(),
            "mode": "chat" if self.conversation is not None else "completion",
            "answer": answer,
            "metadata": {"usage": self.usage(), "retriever_resources": self.resources()},
        }
        self.remember(answer)
        return web.json_response(body)

    async def streaming(self) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(self.request)
        sent: list[str] = []
        try:
            await self._stream(response, sent)
        except ConnectionResetError:
            pass  # the caller went away
        finally:
            self.remember("".join(sent))
        return response

    def thought(self, text: str) -> dict[str, Any]:
        return {
            "event": "agent_thought",
            **self.fields(),
            "id": f"thought-{self.message_id}",
            "position": 1,
            "thought": text,
            "observation": "",
            "tool": "",
            "tool_input": "",
            "message_files": [],
        }

    def workflow(self, kind: str, **data: Any) -> dict[str, Any]:
        return {
            "event": kind,
            "task_id": self.task.id,
            "workflow_run_id": self.task.id,
            "data": data,
        }

    async def _stream(self, response: web.StreamResponse, sent: list[str]) -> None:
        async def event(data: dict[str, Any]) -> None:
            if self.name == "ping":
                await response.write(b"event: ping\n\n")
            await response.write(f"data: {json.dumps(data)}\n\n".encode())

        if self.name == "workflow":
            await event(self.workflow("workflow_started", id=self.task.id, sequence_number=1))
            await event(self.workflow("node_started", node_id="llm", node_type="llm", index=1))
        if self.name == "agent":
            await event(self.thought(""))
        kind = "agent_message" if self.name == "agent" else "message"
        delay = float(self.args[1]) if self.name == "slow" and len(self.args) > 1 else 0.0
        for piece in self.pieces:
            if self.task.stopped.is_set():
                break
            if delay:
                await asyncio.sleep(delay)
            await event({"event": kind, **self.fields(), "answer": piece})
            sent.append(piece)
        if self.name == "die-after":
            # Dies a moment after its last event: aiohttp drops what a client has received but
            # not yet read once the connection breaks, which would make the test a race.
            await asyncio.sleep(0.3)
            assert self.request.transport is not None
            self.request.transport.close()
            return
        if self.name == "error-after":
            name = self.args[1] if len(self.args) > 1 else "completion_request_error"
            status, message = ERRORS.get(name, (500, "Error."))
            error = {"status": status, "code": name, "message": message}
            await event({"event": "error", **self.fields(), **error})
            await response.write_eof()
            return
        if self.name == "replace":
            await event({"event": "message_replace", **self.fields(), "answer": REPLACEMENT})
            sent[:] = [REPLACEMENT]
        if self.name == "agent":
            await event(self.thought("".join(sent)))
        if self.name == "workflow":
            await event(self.workflow("node_finished", node_id="llm", status="succeeded"))
            await event(self.workflow("workflow_finished", id=self.task.id, status="succeeded"))
        end = {"event": "message_end", **self.fields()}
        if self.name == "doc-example":
            # The docs' example names the message `id` in message_end.
            end = {"event": "message_end", "id": self.message_id}
            if self.conversation is not None:
                end["conversation_id"] = self.conversation.id
        end["metadata"] = {"usage": self.usage(), "retriever_resources": self.resources()}
        await event(end)
        await response.write_eof()
