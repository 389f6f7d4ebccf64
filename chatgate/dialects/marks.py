"""chatgate's own marks on an answer in any dialect: which engine wrote it, whether that was a
fallback, and for an assistant with knowledge bases the passages the engine was shown."""

from __future__ import annotations

from typing import Any

from chatgate.dialects.call import EngineCall
from chatgate.providers.fallback import Provenance


def answer_marks(source: Provenance) -> dict[str, Any]:
    """chatgate's own fields on a completion: the engine that answered (null for the
    assistant's canned answer) and whether that was a fallback."""
    return {"chatgate_fallback": source.fallback, "chatgate_provider": source.provider}


def answer_headers(source: Provenance) -> dict[str, str]:
    headers = {"X-Chatgate-Fallback": "true" if source.fallback else "false"}
    if source.provider:
        headers["X-Chatgate-Provider"] = source.provider
    return headers


def citation_marks(call: EngineCall) -> dict[str, Any]:
    """chatgate's own field for an assistant with knowledge bases: the passages the engine was
    shown, numbered as the answer cites them ([1], [2]…), as API.md's `Citation`s."""
    return {"chatgate_citations": call.citations} if call.assistant.knowledge_bases else {}
