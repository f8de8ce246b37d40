"""The fast reader's Windows-1251 files: transcoded whole, and UTF-8 text hiding in them looked for in one pass."""

from __future__ import annotations

import pytest

from voronka.io.columnar import _MOJIBAKE_RE, _may_hide_utf8

WORDS = ["Сделка №1", "ООО «Клиент»", "", "Переговоры", "€ 5 — ок", "plain ascii", "Ёлка, ёж, Ш", "Р°С"]


def test_plain_windows_1251_text_is_no_suspect() -> None:
    assert not _may_hide_utf8(";".join(WORDS * 1000).encode("cp1251"))


@pytest.mark.parametrize("word", ["Привет", "Ши", "ёж", "Ёлка"])
def test_utf8_cyrillic_read_as_windows_1251_is_a_suspect(word: str) -> None:
    mixed = ";".join(WORDS).encode("cp1251") + word.encode("utf-8")
    assert _may_hide_utf8(mixed)


@pytest.mark.parametrize("word", ["Привет", "Переговоры", "ООО «Клиент»", "Сделка №1"])
def test_the_byte_scan_finds_whatever_the_exact_pattern_finds(word: str) -> None:
    """The scan is a superset of the exact check the columns then run: it never misses what that would find."""
    as_cp1251 = word.encode("utf-8").decode("cp1251")
    assert _MOJIBAKE_RE.search(as_cp1251) is None or _may_hide_utf8(as_cp1251.encode("cp1251"))
