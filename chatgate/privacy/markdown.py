"""One conversation as a Markdown file: its name in the archive, its head, and each message with
its role, time, text and citations. The text is written as it was said, Markdown included."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Any

from chatgate.chat.schemas import SessionOut
from chatgate.chat.walk import MessageJSON

TITLE_IN_NAME = 60  # characters of the title kept in a file name
UNTITLED = "Untitled conversation"
# Characters some file system of Windows, macOS or Linux refuses in a name, and runs of dots:
# nothing an unzip tool could read as a path.
_NOT_IN_NAMES = re.compile(r'[<>:"/\\|?*]|\.\.+')
STATUS_NOTES = {
    "interrupted": "Interrupted: stopped before it was finished; the text so far is kept",
    "failed": "Failed: the text so far is kept",
    "streaming": "Still being written when this copy was made",
}


class FileNames:
    """`2026-12-01 Title.md`, the title cut down to what every system takes; a name already
    given in this archive, in any letter case (Windows and macOS do not tell case apart), gets
    ` (2)`, ` (3)`... Sorted by name, the files are in the order of the days they started."""

    def __init__(self) -> None:
        self._given: set[str] = set()

    def for_session(self, session: SessionOut) -> str:
        stem = f"{session.created_at:%Y-%m-%d} {_safe_title(session.title)}"
        name, copies = f"{stem}.md", 1
        while name.casefold() in self._given:
            copies += 1
            name = f"{stem} ({copies}).md"
        self._given.add(name.casefold())
        return name


def _safe_title(title: str) -> str:
    text = "".join(
        " " if unicodedata.category(c).startswith(("C", "Z")) else c
        for c in unicodedata.normalize("NFC", title)
    )
    text = " ".join(_NOT_IN_NAMES.sub(" ", text).split())[:TITLE_IN_NAME]
    return text.strip(". ") or "Untitled"


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def conversation_head(session: SessionOut) -> str:
    return (
        f"# {' '.join(session.title.split()) or UNTITLED}\n\n"  # a title may hold line breaks
        f"- Assistant: {session.assistant_id}\n"
        f"- Conversation id: {session.id}\n"
        f"- Started: {_when(session.created_at)}\n"
        f"- Last updated: {_when(session.updated_at)}\n"
        f"- Messages: {session.message_count}\n"
    )


def message_markdown(message: MessageJSON) -> str:
    heading = f"{message['role'].capitalize()} · {_when(message['created_at'])}"
    if message.get("model"):
        heading += f" · {message['model']}"
    parts = [f"\n---\n\n## {heading}\n\n"]
    note = STATUS_NOTES.get(message["status"])
    if note:
        error = message.get("error") or {}
        reason = f" ({error['message']})" if error.get("message") else ""
        parts.append(f"_{note}{reason}._\n\n")
    if message.get("tool_call_id"):
        parts.append(f"_Result of tool call {message['tool_call_id']}:_\n\n")
    calls = message.get("tool_calls") or []
    if message["content"] or not calls:
        parts.append(f"{message['content']}\n" if message["content"] else "_(no text)_\n")
    parts.extend(_tool_call(call) for call in calls)
    if message.get("citations"):
        parts.append("\nSources:\n\n")
        parts.extend(_citation(citation) for citation in message["citations"])
    return "".join(parts)


def _tool_call(call: dict[str, Any]) -> str:
    # The arguments as an indented code block: whatever they hold, Markdown shows it as is.
    arguments = "\n".join(f"    {line}" for line in (call["arguments"] or "").splitlines())
    return f"\nCalled tool `{call['name']}` ({call['id']}) with:\n\n{arguments}\n"


def _citation(citation: dict[str, Any]) -> str:
    where = citation["document_name"]
    if citation.get("page") is not None:
        where += f", page {citation['page']}"
    passage = "\n".join(f"  > {line}".rstrip() for line in citation["text"].splitlines())
    # [n] as the answer cites it: a numbered list would renumber from its first item.
    return f"- [{citation['index']}] {where} (score {citation['score']:.2f})\n{passage}\n"
