"""Whether a user's message asks for a person, in English or Chinese.

Word boundaries keep English words inside others out ("humanity", "agenda"); a phrase that only
mentions people ("human resources policy", "the agent's commission", "客服电话是多少") is not a
request. A message must be short to count: a long one that mentions an agent in passing is a
question for the assistant."""

from __future__ import annotations

import re

# Longer than this, a message is about something else, even if it names a person.
MAX_REQUEST_CHARS = 200

_A = r"(?:a\s+|an\s+|the\s+)?"
_REAL = r"(?:real\s+|live\s+|actual\s+)?"
_WHO = r"(?:human(?:\s+being|\s+agent)?|person|people|agent|representative|rep|operator"
_WHO += r"|someone|somebody|staff|customer\s+service)"
_ASKED = r"(?:human|person|agent|representative|operator)"
_ENGLISH = re.compile(
    "|".join(
        [
            # "talk to a human", "put me through to an agent"
            rf"\b(?:talk|speak|chat|connect|transfer|put)\s+(?:me\s+)?"
            rf"(?:to|with|through\s+to)\s+{_A}{_REAL}{_WHO}\b",
            # "I want a real person", "need to speak to an agent"
            rf"\b(?:want|need|would\s+like|'d\s+like)\s+(?:to\s+(?:talk|speak)\s+to\s+)?"
            rf"{_A}{_REAL}{_ASKED}\b",
            rf"\b(?:get|give)\s+me\s+{_A}{_REAL}{_ASKED}\b",
            r"\b(?:real|live|actual)\s+(?:human|person|agent)\b",
            r"\bhuman\s+(?:please|agent|support)\b",
            r"^\s*(?:human|agent|representative|operator)[\s.!?]*$",
        ]
    ),
    re.IGNORECASE,
)
# 人工 alone is also "artificial" (人工智能: AI), 真人 also "live-action" (真人秀: a reality show).
_CHINESE = re.compile(
    r"人工客服|人工服务|人工坐席|(?:真人|活人)(?!秀|版|电影|cs)"
    r"|(?:找|转|要|叫|联系|接通|请|接)(?:一下|一个|个|接)?(?:客服|人工(?!智能))"
    r"|^\s*(?:人工|客服)[\s。！!？?]*$"
)
# Mentions that are not requests, however they match above.
_NOT_A_REQUEST = re.compile(
    r"\bhuman\s+(?:resources|rights|error|nature|body|history)\b|客服电话|客服邮箱", re.IGNORECASE
)


def asks_for_person(text: str) -> bool:
    """True when the message asks to be put through to a person."""
    if len(text) > MAX_REQUEST_CHARS or _NOT_A_REQUEST.search(text):
        return False
    return bool(_ENGLISH.search(text) or _CHINESE.search(text))
