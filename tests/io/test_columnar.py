"""The fast reader's Windows-1251 columns: decoded as Python decodes them, on each of its three paths."""

from __future__ import annotations

import pyarrow as pa
import pytest

from voronka.io.columnar import _from_cp1251

WORDS = ["Сделка №1", "ООО «Клиент»", "", "Переговоры", "€ 5 — ок", "plain ascii"]


@pytest.mark.parametrize(
    "values",
    [
        [f"+7 900 {i:07d}" for i in range(5000)],  # ASCII: the same bytes
        [WORDS[i % len(WORDS)] for i in range(5000)],  # few distinct values: each decoded once
        [f"{WORDS[i % len(WORDS)]} {i}" for i in range(5000)],  # all distinct: decoded in one piece
        ["", *(f"№{i}" if i % 3 else "" for i in range(5000)), ""],  # empty values, at both ends too
        ["", ""],
    ],
    ids=["ascii", "repeated", "distinct", "empty values", "all empty"],
)
def test_a_cp1251_column_decodes_as_python_does(values: list[str]) -> None:
    col = pa.array([v.encode("cp1251") for v in values], pa.binary())
    decoded = _from_cp1251(col)
    assert decoded is not None
    assert decoded[0].to_pylist() == values
    assert decoded[1] is False  # no UTF-8 text read as Windows-1251 here


@pytest.mark.parametrize("repeat", [1, 5000], ids=["distinct", "repeated"])
def test_utf8_text_in_a_cp1251_column_is_a_suspect_and_an_undefined_byte_a_refusal(repeat: int) -> None:
    utf8 = [f"Привет {i % repeat}".encode() for i in range(5000)]  # read as cp1251: "РџСЂРёРІРµС‚"
    decoded = _from_cp1251(pa.array(utf8, pa.binary()))
    assert decoded is not None and decoded[1] is True
    undefined = [b"ok \x98", *[f"v{i % repeat}".encode("cp1251") for i in range(4999)]]
    assert _from_cp1251(pa.array(undefined, pa.binary())) is None
