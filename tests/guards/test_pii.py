"""Detectors: what each kind takes, in which formats, and what it leaves alone."""

from __future__ import annotations

from datetime import date

import pytest

from chatgate.guards.pii import (
    bank_card_valid,
    find_pii,
    luhn_valid,
    resident_id_check_char,
    resident_id_valid,
)


def luhn_complete(partial: str) -> str:
    """`partial` with the check digit that makes it pass Luhn."""
    return next(partial + d for d in "0123456789" if luhn_valid(partial + d))


def resident_id(first17: str) -> str:
    return first17 + resident_id_check_char(first17)


def kinds(text: str) -> list[tuple[str, str]]:
    return [(m.kind, m.text) for m in find_pii(text)]


# --- mainland mobile numbers ---------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "13812345678",
        "138 1234 5678",
        "138-1234-5678",
        "+8613812345678",
        "+86 138 1234 5678",
        "0086-13812345678",
        "１３８１２３４５６７８",  # full-width digits
        "19912345678",
    ],
)
def test_cn_mobile_formats(written: str) -> None:
    assert kinds(f"我的手机号是{written}，谢谢") == [("cn_mobile", written)]
    assert kinds(f"call me on {written}.") == [("cn_mobile", written)]


@pytest.mark.parametrize(
    "text",
    [
        "12812345678",  # no 12x mobile range
        "138123456789",  # 12 digits
        "1381234567",  # 10 digits
        "SF13812345678",  # inside a tracking code
        "ORD-13812345678",  # joined to an order prefix
        "13812345678-02",  # joined to a suffix
        "2024031381234567890",  # inside a longer number
    ],
)
def test_cn_mobile_boundaries(text: str) -> None:
    assert [k for k, _ in kinds(text) if k == "cn_mobile"] == []


# --- resident identity numbers -------------------------------------------------------------


def test_resident_id_checksum_known_values() -> None:
    assert resident_id_check_char("11010519491231002") == "X"
    assert resident_id_valid("11010519491231002X")
    assert resident_id_valid("11010519491231002x")
    assert resident_id_valid("360426199101010071")
    assert not resident_id_valid("360426199101010072")


@pytest.mark.parametrize(
    "written",
    ["11010519491231002X", "11010519491231002x", "110105 19491231 002X", "110105-19491231-002X"],
)
def test_resident_id_formats(written: str) -> None:
    assert kinds(f"身份证号：{written}。") == [("cn_resident_id", written)]


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("110105194912310021", "wrong check digit"),
        (resident_id("99010519491231002"), "no province 99"),
        (resident_id("11010519490230002"), "no 30 February"),
        (resident_id("11010518991231002"), "born before 1900"),
        (resident_id("11010520991231002"), "born in the future"),
    ],
)
def test_resident_id_rejects(number: str, why: str) -> None:
    assert not resident_id_valid(number, today=date(2025, 1, 1)), why
    assert [k for k, _ in kinds(number) if k == "cn_resident_id"] == [], why


# --- bank cards ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "4111111111111111",  # Visa test number
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5500 0000 0000 0004",  # Mastercard
        "3782 822463 10005",  # American Express, 4-6-5
        "6011111111111117",  # Discover
        "3530111333300000",  # JCB
    ],
)
def test_bank_card_formats(written: str) -> None:
    assert kinds(f"card {written} please") == [("bank_card", written)]


def test_unionpay_nineteen_digits_grouped() -> None:
    card = luhn_complete("622202123456789012")
    grouped = " ".join([card[:4], card[4:8], card[8:12], card[12:16], card[16:]])
    assert kinds(f"银行卡号{grouped}，开户行北京") == [("bank_card", grouped)]
    assert kinds(f"银行卡号{card}。") == [("bank_card", card)]


def test_bank_card_rejects() -> None:
    assert not luhn_valid("4111111111111112")
    assert not bank_card_valid("4111111111111112")  # Luhn fails
    assert not bank_card_valid(luhn_complete("123456789012345"))  # no issuer starts with 1
    assert not bank_card_valid(luhn_complete("411111111111111111"))  # Visa is 16 digits here
    assert not bank_card_valid(luhn_complete("341111111111111"))  # Amex is 15 digits
    assert kinds("order 41111111111111112") == []  # 17-digit order number
    assert kinds("ref 41111111111111110000") == []  # longer run of digits


def test_card_then_a_date_keeps_the_card_only() -> None:
    assert kinds("4111 1111 1111 1111 2024-03-12") == [("bank_card", "4111 1111 1111 1111")]


# --- e-mail --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    ["zhang.san@example.com", "Li_Si+shop@mail.example.com.cn", "A1@EXAMPLE.ORG"],
)
def test_email(written: str) -> None:
    assert kinds(f"邮箱{written}，收到请回复") == [("email", written)]
    assert kinds(f"write to <{written}>.") == [("email", written)]


@pytest.mark.parametrize("text", ["user@localhost", "@someone on social", "a@b.c", "x@-bad.com"])
def test_email_rejects(text: str) -> None:
    assert kinds(text) == []


# --- international phones ------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "+44 20 7946 0958",
        "+1 (415) 555-2671",
        "+852 9123 4567",
        "+33 1 42 68 53 00",
        "+81-3-1234-5678",
        "+4915123456789",
    ],
)
def test_intl_phone(written: str) -> None:
    assert kinds(f"reach me at {written} tomorrow") == [("intl_phone", written)]
    assert kinds(f"电话{written}，谢谢") == [("intl_phone", written)]


@pytest.mark.parametrize(
    "text", ["+1 555 0100", "+12345", "score +44 7", "v+1.2.3", "+999 1234 5678"]
)
def test_intl_phone_rejects(text: str) -> None:
    assert kinds(text) == []


def test_intl_phone_drops_a_trailing_group_that_is_not_its_own() -> None:
    assert kinds("+44 20 7946 0958 12 items") == [("intl_phone", "+44 20 7946 0958")]


# --- together ------------------------------------------------------------------------------


def test_overlaps_resolve_to_one_kind_each() -> None:
    text = "手机+86 138 1234 5678，身份证11010519491231002X，卡4111111111111111，a@b.cn"
    assert [k for k, _ in kinds(text)] == ["cn_mobile", "cn_resident_id", "bank_card", "email"]


def test_only_the_kinds_asked_for() -> None:
    text = "13812345678 a@b.cn"
    assert [m.kind for m in find_pii(text, ["email"])] == ["email"]
    assert find_pii(text, []) == []


def test_offsets_are_those_of_the_original_text() -> None:
    text = "电话：１３８ １２３４ ５６７８！"
    (match,) = find_pii(text)
    assert text[match.start : match.end] == match.text == "１３８ １２３４ ５６７８"
    assert match.canonical == "13812345678"


@pytest.mark.parametrize(
    "text",
    [
        "订单号 202403121530451234，金额 ¥1,299.00，2024-03-12 15:30 下单",
        "Order #4528 shipped on 2024/03/12, tracking SF1234567890123, total $19.99",
        "快递单号 773012345678901，时间戳 1710234567890",
        "Invoice 2024-000123, ISBN 978-7-111-54742-6, version 10.2.3",
    ],
)
def test_ordinary_text_has_no_finds(text: str) -> None:
    assert find_pii(text) == []
