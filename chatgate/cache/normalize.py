"""The form of a question as a person reads it: the same question typed differently gives the
same form, a different question never does.

It is not the cache key: an engine reads every character it is sent, invisible ones and quotes
included, so a cached answer is keyed by the exact text (see cache.service). The cache uses the
form only to leave out questions that say nothing at all (the form is empty).

What is folded: width and compatibility forms (NFKC: full-width Latin, digits and punctuation,
the ideographic space), case (casefold), runs of whitespace, invisible format characters, the
sentence punctuation of English and Chinese (？！。，、；：…, quotes, brackets), and spaces
next to Chinese or Japanese characters (those scripts do not separate words with spaces).

What is kept, because it can change the question: words and their order (so negations and
particles such as 吗 stay), digits with the punctuation inside numbers (1.5, 1,000, 10:30, -5),
a dot, colon, apostrophe or hyphen inside a word (node.js, what's, e-mail), and every other
sign (C#, 50%, a@b, km/h, +, $).
"""

from __future__ import annotations

import hashlib
import unicodedata

# Punctuation that only shapes a sentence: dropped wherever it stands.
SENTENCE_PUNCTUATION = frozenset('?!;,"`~。、〜‧・')
# Punctuation that may be part of a word or number: dropped unless it stands between two
# letters or digits.
INNER_PUNCTUATION = frozenset(".:'-")
# Apostrophes and hyphens that NFKC leaves as they are.
UNIFY = str.maketrans({"’": "'", "‘": "'", "‐": "-", "‑": "-", "−": "-"})


def _is_cjk(char: str) -> bool:
    """Han ideographs and kana: scripts written without spaces between words."""
    code = ord(char)
    return (
        0x3040 <= code <= 0x30FF  # hiragana, katakana
        or 0x3400 <= code <= 0x4DBF  # CJK extension A
        or 0x4E00 <= code <= 0x9FFF  # CJK unified ideographs
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
        or 0x20000 <= code <= 0x3FFFF  # extensions B and later
    )


def _drops(char: str, before: str, after: str) -> bool:
    """Whether a punctuation mark is only sentence shape here (and becomes a space)."""
    if char in SENTENCE_PUNCTUATION:
        # A comma between digits is a thousands separator, not a pause.
        return not (char == "," and before.isdigit() and after.isdigit())
    if char in INNER_PUNCTUATION:
        if char == "-" and after.isdigit() and not before.isalnum():
            return False  # a negative number
        return not (before.isalnum() and after.isalnum())
    category = unicodedata.category(char)
    # Quotes and brackets of any script; a dash or other mark between words (—, …).
    return category in ("Pi", "Pf", "Ps", "Pe") or (category in ("Po", "Pd") and not char.isascii())


def _fold(char: str, before: str, after: str) -> str:
    """What one character of the folded text becomes: itself, a space, or nothing."""
    category = unicodedata.category(char)
    if category == "Cf":
        return ""  # zero-width spaces and joiners, soft hyphens, byte-order marks
    if char.isspace() or category == "Cc":
        return " "
    is_mark = category[0] == "P" or char in SENTENCE_PUNCTUATION
    return " " if is_mark and _drops(char, before, after) else char


def normalize_question(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold().translate(UNIFY)
    padded = f" {folded} "
    out = [_fold(padded[i], padded[i - 1], padded[i + 1]) for i in range(1, len(padded) - 1)]
    words = "".join(out).split()
    if not words:
        return ""
    # Join words back with one space, except where either side is Chinese or Japanese.
    joined = [words[0]]
    for word in words[1:]:
        if not (_is_cjk(joined[-1][-1]) or _is_cjk(word[0])):
            joined.append(" ")
        joined.append(word)
    return "".join(joined)


def question_digest(normalized: str) -> str:
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()[:32]
