"""Chunking: paragraphs, then sentences in Chinese and English, token-counted sizes, overlap by
whole sentences, pages kept, parent-child. Pure functions, so plain unit tests."""

from __future__ import annotations

import re

from chatgate.knowledge.chunking import (
    chunk_pages,
    hard_wrap,
    keyword_text,
    split_paragraphs,
    split_sentences,
)
from chatgate.knowledge.parsing import Page


def count(text: str) -> int:
    """A stand-in tokenizer: one token per Chinese character and per other word."""
    return len(re.findall(r"[\u4e00-\u9fff]|[^\s\u4e00-\u9fff]+", text))


def test_sentences_end_at_chinese_and_english_marks() -> None:
    text = "第一句。第二句！“真的吗？”最后；Version 3.14 is out. Is it? Yes! a; b"
    assert split_sentences(text) == [
        "第一句。", "第二句！", "“真的吗？”", "最后；", "Version 3.14 is out.", "Is it?", "Yes!",
        "a;", "b",
    ]  # fmt: skip


def test_a_line_break_inside_a_paragraph_is_a_space_between_words_only() -> None:
    text = "The quick brown\nfox jumps.\n\n退货政策\n规定如下。\n \n  third"
    assert split_paragraphs(text) == ["The quick brown fox jumps.", "退货政策规定如下。", "third"]


def test_english_chunks_fit_the_size_and_overlap_by_whole_sentences() -> None:
    sentences = [f"Sentence number {i} says something." for i in range(12)]  # 5 tokens each
    chunks = chunk_pages([Page(" ".join(sentences))], size=20, overlap=5, count_tokens=count)
    assert all(c.token_count <= 20 for c in chunks)
    assert chunks[0].text == " ".join(sentences[:4])
    # The next chunk starts with the last sentence of the one before (5 tokens of overlap).
    assert chunks[1].text.startswith(sentences[3] + " " + sentences[4])
    assert all(c.text.endswith(".") for c in chunks)  # never cut mid-sentence
    covered = " ".join(c.text for c in chunks)
    assert all(s in covered for s in sentences)


def test_chinese_chunks_split_at_sentence_marks_without_spaces() -> None:
    text = "退货需在七天内申请。商品应保持完好。运费由买家承担。退款三日内到账。"  # 9+7+7+7
    chunks = chunk_pages([Page(text)], size=18, overlap=0, count_tokens=count)
    assert [c.text for c in chunks] == [
        "退货需在七天内申请。商品应保持完好。", "运费由买家承担。退款三日内到账。",
    ]  # fmt: skip
    assert [c.token_count for c in chunks] == [count(c.text) for c in chunks]


def test_mixed_text_keeps_spaces_only_between_latin_words() -> None:
    text = "请登录 Web 控制台。Then open Settings. 然后点击保存。"
    chunks = chunk_pages([Page(text)], size=100, overlap=0, count_tokens=count)
    assert [c.text for c in chunks] == ["请登录 Web 控制台。Then open Settings.然后点击保存。"]


def test_paragraphs_stay_apart_inside_a_chunk() -> None:
    chunks = chunk_pages([Page("One. Two.\n\nThree.")], size=50, overlap=0, count_tokens=count)
    assert [c.text for c in chunks] == ["One. Two.\n\nThree."]


def test_a_sentence_over_the_size_is_hard_wrapped() -> None:
    long_english = " ".join(f"w{i}" for i in range(25)) + "."
    pieces = hard_wrap(long_english, 10, count)
    assert [count(p) for p in pieces] == [10, 10, 5]
    long_chinese = "汉" * 25 + "。"
    chunks = chunk_pages([Page(long_chinese)], size=10, overlap=3, count_tokens=count)
    assert all(c.token_count <= 10 for c in chunks)
    assert "".join(c.text for c in chunks) == long_chinese


def test_a_chunk_never_spans_pages_and_keeps_its_page() -> None:
    pages = [Page("Alpha one. Alpha two.", 1), Page("第二页的内容。", 2), Page("Gamma.", 3)]
    chunks = chunk_pages(pages, size=100, overlap=10, count_tokens=count)
    assert [(c.page, c.text) for c in chunks] == [
        (1, "Alpha one. Alpha two."), (2, "第二页的内容。"), (3, "Gamma."),
    ]  # fmt: skip


def test_parent_child_matches_small_and_keeps_the_parent() -> None:
    sentences = [f"Fact {i} is true." for i in range(8)]  # 4 tokens each
    chunks = chunk_pages(
        [Page(" ".join(sentences))], size=8, overlap=0, count_tokens=count, parent_size=16
    )
    assert [c.text for c in chunks] == [
        " ".join(sentences[i : i + 2]) for i in range(0, 8, 2)
    ]  # fmt: skip
    assert chunks[0].parent_text == chunks[1].parent_text == " ".join(sentences[:4])
    assert chunks[2].parent_text == " ".join(sentences[4:])
    assert all(c.parent_text and c.text in c.parent_text for c in chunks)


def test_keyword_text_segments_chinese_and_drops_punctuation() -> None:
    segmented = keyword_text("我们的退货政策，适用于 Online orders.")
    assert segmented == "我们 的 退货 政策 适用 于 Online orders"
