"""Personal data in free text: found by pattern, kept only when its own validation agrees.

Numbers are only taken whole: a candidate touching a letter or digit, or joined to one by a dash,
is part of something else (an order number, a tracking code) and is left alone. Full-width forms
(１３８, ＠) are read as their ASCII twins, one character for one, so offsets stay those of the
original text.

International numbers are validated by `phonenumbers` (Google's libphonenumber metadata: country
codes, lengths and allocated ranges); the checksums are a few lines each and written here.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import date

import phonenumbers

from chatgate.core.policies import ALL_PII_KINDS, PiiKind

# Full-width ASCII (U+FF01–U+FF5E), the ideographic space, no-break space and the Unicode dashes,
# each read as one ASCII character so that match offsets hold in the original text.
_WIDE = re.compile("[\uff01-\uff5e\u3000\u00a0\u2010-\u2015]")
_ASCII_TWIN = {
    **{chr(0xFF01 + i): chr(0x21 + i) for i in range(94)},
    "\u3000": " ",
    "\u00a0": " ",
    **{chr(c): "-" for c in range(0x2010, 0x2016)},
}


def _one_for_one(text: str) -> str:
    return _WIDE.sub(lambda m: _ASCII_TWIN[m.group()], text)


def _whole(first: str) -> str:
    """`first` (one character class) starting a value that is not inside a longer code: no letter
    or digit before it, nor one joined to it by a dash. The check comes after the first character
    so that the regex engine can skip quickly to the places where that character occurs."""
    return rf"{first}(?<![0-9A-Za-z]{first})(?<![0-9A-Za-z]-{first})"


_END = r"(?![0-9A-Za-z])(?!-[0-9A-Za-z])"

_MOBILE_START = "|".join(
    [r"\+(?<![0-9A-Za-z+]\+)86[ -]?1", r"\(\+86\) ?1", _whole("0") + "086[ -]?1", _whole("1")]
)
_CN_MOBILE = re.compile(
    rf"(?:{_MOBILE_START})[3-9][0-9](?:[ -]?[0-9]{{4}}){{2}}{_END}"
    rf"|{_whole('1')}[3-9][0-9]\.[0-9]{{4}}\.[0-9]{{4}}(?![0-9A-Za-z])(?!\.[0-9])"
)
_RESIDENT_ID = re.compile(
    _whole("[1-9]") + r"(?:[0-9]{5}[ -]?(?:18|19|20)[0-9]{2}[ -]?(?:0[1-9]|1[0-2])"
    r"(?:0[1-9]|[12][0-9]|3[01])[ -]?[0-9]{3}|[0-9]{3}(?: [0-9]{4}){3} [0-9])[0-9Xx]" + _END
)
_SEP = r"(?: {1,2}|-)"
_BANK_CARD = re.compile(
    _whole("[0-9]")
    + rf"(?:[0-9]{{12,18}}|[0-9]{{3}}(?:{_SEP}[0-9]{{4}}){{2,3}}(?:{_SEP}[0-9]{{1,4}})?"
    + rf"|[0-9]{{3}}{_SEP}[0-9]{{6}}{_SEP}[0-9]{{4,5}}|[0-9]{{5}}{_SEP}[0-9]{{10,13}})"
    + _END
)
_EMAIL_DOMAIN = re.compile(
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)
_EMAIL_LOCAL = frozenset(string.ascii_letters + string.digits + "._%+-")
_INTL_PHONE = re.compile(r"\+(?<![0-9A-Za-z+]\+) ?[1-9](?:[ \-.()/]{0,2}[0-9]){5,16}" + _END)
_GROUP_TAIL = re.compile(r"[ \-.()/]+[0-9]+$")

# Province-level codes of the resident identity number (GB/T 2260), Taiwan, Hong Kong and Macau
# included as issued on residence permits.
_PROVINCES = frozenset(
    str(code)
    for low, high in [
        (11, 15),
        (21, 23),
        (31, 37),
        (41, 46),
        (50, 54),
        (61, 65),
        (71, 71),
        (81, 83),
        (91, 91),
    ]
    for code in range(low, high + 1)
)
_ID_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]

# Issuer prefixes (IIN ranges) with the lengths their cards have: a Luhn pass alone is one number
# in ten, so order numbers would be cards far too often without them.
_CARD_RANGES: list[tuple[int, int, frozenset[int]]] = [
    (4, 4, frozenset({16})),  # Visa (13 and 19 digits are rare; 19-digit order numbers are not)
    (51, 55, frozenset({16})),  # Mastercard
    (2221, 2720, frozenset({16})),  # Mastercard 2-series
    (2200, 2204, frozenset({16})),  # Mir
    (34, 34, frozenset({15})),  # American Express
    (37, 37, frozenset({15})),
    (300, 305, frozenset({14, 16})),  # Diners Club
    (36, 36, frozenset({14})),
    (38, 39, frozenset({14, 16})),
    (3528, 3589, frozenset({16})),  # JCB
    (6011, 6011, frozenset({16, 19})),  # Discover
    (644, 649, frozenset({16, 19})),
    (65, 65, frozenset({16, 19})),
    (62, 62, frozenset(range(16, 20))),  # China UnionPay
    (60, 60, frozenset({16, 19})),  # Bank of China and other domestic debit cards
    (9558, 9558, frozenset({19})),  # ICBC legacy debit
    (95599, 95599, frozenset({19})),  # ABC legacy debit
    (5018, 5018, frozenset(range(13, 20))),  # Maestro
    (5020, 5020, frozenset(range(13, 20))),
    (5038, 5038, frozenset(range(13, 20))),
    (5893, 5893, frozenset(range(13, 20))),
    (6304, 6304, frozenset(range(13, 20))),
    (6759, 6759, frozenset(range(13, 20))),
    (6761, 6763, frozenset(range(13, 20))),
]

# Compared as strings of the range's own width: this runs for every candidate.
_ISSUERS = [(str(low), str(high), lengths) for low, high, lengths in _CARD_RANGES]

_PRIORITY: dict[PiiKind, int] = {
    "cn_resident_id": 0,
    "bank_card": 1,
    "cn_mobile": 2,
    "email": 3,
    "intl_phone": 4,
}


@dataclass(frozen=True, slots=True)
class PiiMatch:
    kind: PiiKind
    start: int
    end: int
    text: str  # as written in the original

    @property
    def canonical(self) -> str:
        """The value without its formatting: the same number written twice is one value."""
        if self.kind == "email":
            return self.text.lower()
        plain = "".join(ch for ch in _one_for_one(self.text) if ch.isalnum()).upper()
        if self.kind == "cn_mobile":
            return plain[-11:]
        return plain


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch in "0123456789")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def resident_id_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2, as GB 11643 uses it."""
    total = sum(int(ch) * w for ch, w in zip(first17, _ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11]


def _resident_id_shaped(number: str, today: date | None = None) -> bool:
    """A province, then a birth date that can be: an identity number, if not a correct one."""
    if len(number) != 18 or not number[:17].isdigit() or number[:2] not in _PROVINCES:
        return False
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return date(1900, 1, 1) <= born <= (today or date.today())


def resident_id_valid(number: str, *, today: date | None = None) -> bool:
    number = number.upper()
    return _resident_id_shaped(number, today) and resident_id_check_char(number[:17]) == number[17]


def card_issuer_known(digits: str) -> bool:
    length = len(digits)
    return any(
        length in lengths and low <= digits[: len(low)] <= high for low, high, lengths in _ISSUERS
    )


def bank_card_valid(digits: str) -> bool:
    # An 18-digit number shaped like an identity number is a mistyped one, not a rare card length.
    return (
        13 <= len(digits) <= 19
        and luhn_valid(digits)
        and card_issuer_known(digits)
        and not _resident_id_shaped(digits)
    )


def intl_phone_valid(candidate: str) -> bool:
    try:
        number = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(number))


def _shrinking(candidate: str) -> list[str]:
    """The candidate, then the candidate less its last digit group, and so on: a greedy match may
    have taken a group that belongs to the next number or word."""
    found = [candidate]
    while (tail := _GROUP_TAIL.search(found[-1])) and tail.start() > 0:
        found.append(found[-1][: tail.start()])
    return found


def _scan(text: str, kinds: set[PiiKind]) -> list[PiiMatch]:
    plain = _one_for_one(text) if _WIDE.search(text) else text
    found: list[PiiMatch] = []

    def add(kind: PiiKind, start: int, end: int) -> None:
        found.append(PiiMatch(kind, start, end, text[start:end]))

    if "cn_mobile" in kinds:
        for m in _CN_MOBILE.finditer(plain):
            add("cn_mobile", m.start(), m.end())
    if "cn_resident_id" in kinds:
        for m in _RESIDENT_ID.finditer(plain):
            if resident_id_valid("".join(ch for ch in m.group() if ch.isalnum())):
                add("cn_resident_id", m.start(), m.end())
    if "bank_card" in kinds:
        for m in _BANK_CARD.finditer(plain):
            for candidate in _shrinking(m.group()):
                if len(_digits(candidate)) < 13:
                    break
                if bank_card_valid(_digits(candidate)):
                    add("bank_card", m.start(), m.start() + len(candidate))
                    break
    if "email" in kinds and "@" in plain:
        for m in _EMAIL_DOMAIN.finditer(plain):
            start = m.start()
            while start > 0 and m.start() - start < 64 and plain[start - 1] in _EMAIL_LOCAL:
                start -= 1
            while start < m.start() and not plain[start].isalnum():
                start += 1  # a local part starts with a letter or digit
            if start < m.start():
                add("email", start, m.end())
    if "intl_phone" in kinds and "+" in plain:
        for m in _INTL_PHONE.finditer(plain):
            for candidate in _shrinking(m.group()):
                if len(_digits(candidate)) < 7:
                    break
                if intl_phone_valid(candidate):
                    add("intl_phone", m.start(), m.start() + len(candidate))
                    break
    return found


def find_pii(text: str, kinds: list[PiiKind] | None = None) -> list[PiiMatch]:
    """Validated finds of the given kinds (all when None), without overlaps, in text order."""
    wanted = set(kinds if kinds is not None else ALL_PII_KINDS)
    if not wanted or not text:
        return []
    kept: list[PiiMatch] = []
    cluster: list[PiiMatch] = []
    reach = -1
    for match in sorted(_scan(text, wanted), key=lambda m: m.start):
        if cluster and match.start >= reach:
            kept += _resolve(cluster)
            cluster = []
        cluster.append(match)
        reach = max(reach, match.end) if len(cluster) > 1 else match.end
    return kept + _resolve(cluster)


def _resolve(cluster: list[PiiMatch]) -> list[PiiMatch]:
    """Overlapping finds: the longer wins; on equal length, the more specific kind."""
    if len(cluster) < 2:
        return cluster
    kept: list[PiiMatch] = []
    for match in sorted(cluster, key=lambda m: (m.start - m.end, _PRIORITY[m.kind], m.start)):
        if all(match.end <= k.start or match.start >= k.end for k in kept):
            kept.append(match)
    return sorted(kept, key=lambda m: m.start)
