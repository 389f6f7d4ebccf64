"""The normalised form of a question: typing variants meet, different questions stay apart."""

from __future__ import annotations

import pytest

from chatgate.cache.normalize import normalize_question, question_digest

SAME = [
    # case, spacing and sentence punctuation
    [
        "How do I reset my password?",
        "how do i reset my password",
        "  HOW  DO I\tRESET my password!!",
    ],
    # full-width Latin and punctuation, the ideographic space
    ["Ｗｈａｔ ａｒｅ ｙｏｕｒ ｈｏｕｒｓ？", "what are your hours", "What　are　your hours ?"],
    # curly and straight apostrophes, quotes, brackets
    ["What’s the refund policy?", "what's the refund policy", '"What\'s the (refund) policy"'],
    # Chinese: full-width punctuation, spaces between words, book-title marks
    ["如何重置密码？", "如何重置密码", "如何 重置 密码！", "「如何重置密码」。"],
    ["怎么申请退款？？", "怎么申请退款", "怎么 申请 退款～", "怎么申请退款…"],
    ["《用户协议》在哪里看？", "用户协议在哪里看"],
    # mixed scripts: spacing around Chinese is not meaningful
    ["iPhone 15 怎么退货？", "iphone 15怎么退货", "IPHONE 15 怎么 退货"],
    # full-width digits, zero-width characters
    ["订单１２３４５到哪了？", "订单12345到哪了", "订单12345\u200b到哪了"],
]

DIFFERENT = [
    # negation and particles that change the question
    ("can I return it", "can't I return it"),
    ("can I return it", "I cannot return it"),
    ("你好", "你好吗"),
    ("我的订单呢", "我的订单"),  # a final particle can be the whole question ("where is ...?")
    ("可以退货", "不可以退货"),
    # numbers keep their inner punctuation
    ("is it 1.5 kg", "is it 15 kg"),
    ("1,000 yuan", "1 000 yuan"),
    ("-5 degrees", "5 degrees"),
    ("10:30 or 1030", "1030 or 1030"),
    # signs that carry meaning
    ("what is C#", "what is C"),
    ("50% off", "50 off"),
    ("a@b.com", "a b com"),
    ("km/h", "km h"),
    # word order and words
    ("dog bites man", "man bites dog"),
    ("refund order 12345", "refund order 12346"),
    ("node.js", "node js"),
]


@pytest.mark.parametrize("variants", SAME, ids=lambda v: v[0])
def test_variants_of_one_question_meet(variants: list[str]) -> None:
    forms = {normalize_question(v) for v in variants}
    assert len(forms) == 1, forms
    assert question_digest(forms.pop()) == question_digest(normalize_question(variants[0]))


@pytest.mark.parametrize(("one", "other"), DIFFERENT, ids=lambda v: v)
def test_different_questions_stay_apart(one: str, other: str) -> None:
    assert normalize_question(one) != normalize_question(other)


def test_forms_are_readable_and_empty_when_nothing_is_said() -> None:
    assert normalize_question("  Where IS my order #42?! ") == "where is my order #42"
    assert normalize_question("订单 到 哪 了？") == "订单到哪了"
    assert normalize_question("?!… 。\u200b") == ""
    assert len(question_digest("x")) == 32
