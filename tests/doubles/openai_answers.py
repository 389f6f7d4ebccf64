"""What the chat-completions double (openai_api.py) answers beyond echoed text, as pure functions
of the request: the checks OpenAI makes of messages (tool results answer a call, images are
images), tool calls whose arguments are built from the tools' JSON schemas, structured output,
images and audio described in the echo, stop sequences and logprobs. Nothing is random but the
ids of tool calls, so a `seed` changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

DIRECTIVES = re.compile(r"\[\[[^\]]*\]\]")
CALL = re.compile(r"\[\[call(?:-all|\s+([\w.-]+))\]\]")
IMAGE_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,(.*)", re.DOTALL)
FORMATS = "['png', 'jpeg', 'gif', 'webp']"
ID_ALPHABET = string.ascii_letters + string.digits


class Refusal(Exception):
    """A request OpenAI refuses with a 400 in its error shape."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


@dataclass
class Call:
    id: str
    name: str
    arguments: str  # JSON text, as a model writes it


@dataclass
class Answer:
    """One choice's answer: text pieces, or tool calls."""

    pieces: list[str] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.calls else "stop"


def text_of(content: Any) -> str:
    """A message's text: the string, or its text parts joined (None for calls only)."""
    if isinstance(content, str):
        return content
    return " ".join(p.get("text") or "" for p in content or () if p.get("type") == "text")


def words_of(text: str) -> list[str]:
    """The words of a user message, directives left out, for string values."""
    return [w.strip(".,;:!?\"'()") for w in DIRECTIVES.sub(" ", text).split()]


def sniff_image(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def describe_part(part: dict[str, Any], where: str) -> str:
    """A content part as the echo shows it; refuses what OpenAI refuses."""
    kind = part.get("type")
    if kind == "text":
        return str(part.get("text") or "")
    if kind == "image_url":
        url = str((part.get("image_url") or {}).get("url") or "")
        if url.startswith(("https://", "http://")):
            return f"[image {url}]"
        if (match := IMAGE_URL.fullmatch(url)) is None:
            raise Refusal(
                f"Invalid '{where}.image_url.url'. Expected a base64-encoded data URL with an "
                "image MIME type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), or a URL.",
                param=f"{where}.image_url.url",
                code="invalid_value",
            )
        try:
            data = base64.b64decode(match.group(2), validate=True)
        except binascii.Error:
            raise Refusal("Invalid base64 image_url.", param=f"{where}.image_url.url") from None
        if (media_type := sniff_image(data)) is None:
            raise Refusal(
                "You uploaded an unsupported image. Please make sure your image has of one the "
                f"following formats: {FORMATS}.",
                code="invalid_image_format",
            )
        return f"[image {media_type} {len(data)} bytes]"
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        if audio.get("format") not in ("wav", "mp3"):
            raise Refusal(
                f"Invalid value: '{audio.get('format')}'. Supported values are: 'wav' and 'mp3'.",
                param=f"{where}.input_audio.format",
                code="invalid_value",
            )
        try:
            data = base64.b64decode(str(audio.get("data") or ""), validate=True)
        except binascii.Error:
            raise Refusal("Invalid base64 audio data.", param=f"{where}.input_audio.data") from None
        return f"[audio {audio['format']} {len(data)} bytes]"
    raise Refusal(
        f"Invalid value: '{kind}'. Supported values are: 'text', 'image_url', 'input_audio', "
        "'refusal', 'audio', and 'file'.",
        param=f"{where}.type",
        code="invalid_value",
    )


def describe(content: Any, where: str) -> str:
    """A message's content as the echo shows it: its text, its images and audio mentioned."""
    if isinstance(content, str) or content is None:
        return content or ""
    return " ".join(describe_part(p, f"{where}[{i}]") for i, p in enumerate(content))


def check_messages(messages: list[dict[str, Any]]) -> None:
    """What OpenAI checks of the conversation: each tool result answers a call made before it,
    each part is one it knows and each image an image."""
    called: set[str] = set()
    for i, message in enumerate(messages):
        if message.get("role") == "assistant":
            called.update(call.get("id") for call in message.get("tool_calls") or ())
        if message.get("role") == "tool" and message.get("tool_call_id") not in called:
            raise Refusal(
                "Invalid parameter: messages with role 'tool' must be a response to a "
                "preceeding message with 'tool_calls'.",
                param=f"messages.[{i}].role",
            )
        describe(message.get("content"), f"messages[{i}].content")


def schema_value(schema: dict[str, Any], words: list[str], used: list[int] | None = None) -> Any:
    """A value valid for a JSON schema: each required property of an object, a word of the user
    message for a string (the next one each time, "x" when there are none), 1 for a number,
    true for a boolean, an enum's first value, one item for an array."""
    used = [0] if used is None else used
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return schema_value(schema[key][0], words, used)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {
            name: schema_value(properties.get(name) or {}, words, used)
            for name in schema.get("required") or ()
        }
    if kind == "array":
        return [schema_value(schema.get("items") or {}, words, used)]
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    word = words[used[0] % len(words)] if words else "x"
    used[0] += 1
    return word


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def call_id() -> str:
    return "call_" + "".join(secrets.choice(ID_ALPHABET) for _ in range(24))


def tool_calls(body: dict[str, Any], user_text: str) -> list[Call]:
    """The calls the model makes: the function `tool_choice` names, else the first tool, or the
    one `[[call NAME]]` names, or every tool for `[[call-all]]` (unless `parallel_tool_calls` is
    false)."""
    functions = {t["function"]["name"]: t["function"] for t in body["tools"]}
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        chosen = [choice["function"]["name"]]
    elif match := CALL.search(user_text):
        every = match.group(1) is None and body.get("parallel_tool_calls") is not False
        chosen = list(functions) if every else [match.group(1) or next(iter(functions))]
    else:
        chosen = [next(iter(functions))]
    if unknown := [name for name in chosen if name not in functions]:
        raise Refusal(
            f"Invalid value for 'tool_choice': no function named '{unknown[0]}' was specified "
            "in the 'tools' parameter.",
            param="tool_choice",
            code="invalid_value",
        )
    words = words_of(user_text)
    return [
        Call(call_id(), name, compact(schema_value(functions[name].get("parameters") or {}, words)))
        for name in chosen
    ]


def structured(body: dict[str, Any], text: str, user_text: str) -> str | None:
    """The answer as JSON when `response_format` asks for it."""
    answer_format = body.get("response_format") or {}
    if answer_format.get("type") == "json_schema":
        schema = (answer_format.get("json_schema") or {}).get("schema") or {}
        return compact(schema_value(schema, words_of(user_text)))
    if answer_format.get("type") == "json_object":
        return compact({"echo": text})
    return None


def split_words(text: str) -> list[str]:
    """Pieces of a word and its following space, which join back into the text."""
    words = text.split(" ")
    return [w if i == len(words) - 1 else w + " " for i, w in enumerate(words)]


def cut_at_stop(pieces: list[str], stop: Any) -> list[str]:
    """The pieces up to the first stop sequence, which is left out (as OpenAI does)."""
    stops = [stop] if isinstance(stop, str) else list(stop or ())
    text = "".join(pieces)
    cuts = [at for s in stops if s and (at := text.find(s)) >= 0]
    if not cuts:
        return pieces
    text = text[: min(cuts)]
    return split_words(text) if text else []


def fragments(arguments: str, size: int = 5) -> list[str]:
    """Arguments as they stream: a few characters at a time."""
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]


def logprob_entries(pieces: list[str], top: int) -> list[dict[str, Any]]:
    """OpenAI's `logprobs.content`: an entry for each piece (the double's token), with the
    `top` likeliest tokens, the piece first."""
    entries = []
    for i, piece in enumerate(pieces):
        logprob = -round(0.05 * (i % 7 + 1), 4)
        alternatives = [(piece, logprob)] + [(f"alt{k}", logprob - k) for k in range(1, top)]
        entries.append(
            {
                "token": piece,
                "logprob": logprob,
                "bytes": list(piece.encode()),
                "top_logprobs": [
                    {"token": token, "logprob": value, "bytes": list(token.encode())}
                    for token, value in alternatives[:top]
                ],
            }
        )
    return entries
