"""Whether a message asks for a person: English and Chinese, requests and mere mentions."""

from __future__ import annotations

import pytest

from chatgate.handoff.detect import asks_for_person

ASKING = [
    "I want to talk to a human",
    "Can I speak to a real person?",
    "agent",
    "Human please",
    "let me talk to someone",
    "get me a representative",
    "Connect me with an agent, this is not working",
    "I need a human",
    "Transfer me to an operator.",
    "转人工",
    "我要人工客服",
    "找客服",
    "人工",
    "能找个真人吗",
    "请转接人工服务",
    "给我转人工！",
    "帮我转接客服",
]
NOT_ASKING = [
    "What is the human resources policy?",
    "humanity is great",
    "agenda for today",
    "What does a travel agent do?",
    "Is the user agent string important?",
    "How do I become a real estate agent?",
    "Tell me about human history",
    "someone stole my bike, what do I do",
    "客服电话是多少",
    "人工智能是什么",
    "我要人工智能的资料",
    "真人秀好看吗",
    "人工智能客服系统怎么搭建",
    # A long message that names an agent in passing is a question for the assistant.
    "My travel agent booked a flight; " + "explain the fare rules in detail please. " * 6,
]


@pytest.mark.parametrize("text", ASKING)
def test_requests_for_a_person_are_recognised(text: str) -> None:
    assert asks_for_person(text)


@pytest.mark.parametrize("text", NOT_ASKING)
def test_mentions_are_not_requests(text: str) -> None:
    assert not asks_for_person(text)
