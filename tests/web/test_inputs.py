"""What a client's text may contain, and how our answers and logs bound what they repeat."""

from __future__ import annotations

import pytest

from bot.web.errors import bounded, plain
from bot.web.inputs import MAX_TEXT, BadRequest, check_text, finite_number


@pytest.mark.parametrize(
    "text", ["Beyoncé", "Sigur Rós — Hoppípolla", "坂本龍一", "🎵 emoji 🎶", "a" * MAX_TEXT]
)
def test_real_names_pass(text: str) -> None:
    assert check_text(text, "name") == text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("\ud800", "surrogate"),
        ("a\udfffb", "surrogate"),
        ("nul\x00", "control"),
        ("line\nbreak", "control"),
        ("cr\r", "control"),
        ("tab\t", "control"),
        ("\x1b[31m", "control"),
        ("del\x7f", "control"),
        ("c1\x85", "control"),
        ("a" * (MAX_TEXT + 1), "too long"),
    ],
)
def test_hostile_text_is_a_400_naming_the_field(text: str, why: str) -> None:
    with pytest.raises(BadRequest) as raised:
        check_text(text, "albumName")
    assert raised.value.http_status == 400
    assert "'albumName'" in raised.value.message
    assert why in raised.value.message or "invalid Unicode" in raised.value.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, 5.0),
        (2.5, 2.5),
        (10**400, None),
        (float("nan"), None),
        (float("inf"), None),
        (True, None),
        ("5", None),
        (None, None),
    ],
)
def test_finite_number(value: object, expected: float | None) -> None:
    assert finite_number(value) == expected


def test_echoed_text_is_bounded_and_on_one_line() -> None:
    assert bounded("a\r\nb\x00c") == "a??b?c"
    assert len(bounded("x" * 10_000)) == 300
    body = plain(404, "Unknown: " + "y" * 5000 + "\r\nSet-Cookie: a=b").text
    assert body is not None and len(body) <= 301 and "\r\nSet-Cookie" not in body
