"""The fast reader's Windows-1251 files: transcoded block by block as they parse, UTF-8 text hiding in them looked
for in one pass over the bytes."""

from __future__ import annotations

import mmap
import random
from pathlib import Path

import pyarrow as pa
import pytest

from voronka.io.batch import DealColumns
from voronka.io.columnar import (
    _MOJIBAKE_RE,
    Doubt,
    _count,
    _fixed_width_times,
    _may_hide_utf8,
    _pieces,
    read_columns,
    times,
)
from voronka.io.tables import open_table
from voronka.io.values import parse_datetime
from voronka.store.types import to_micros


def _may_hide(raw: bytes) -> bool:
    return _may_hide_utf8(pa.py_buffer(raw))


WORDS = ["Сделка №1", "ООО «Клиент»", "", "Переговоры", "€ 5 — ок", "plain ascii", "Ёлка, ёж, Ш", "Р°С"]


def test_plain_windows_1251_text_is_no_suspect() -> None:
    assert not _may_hide(";".join(WORDS * 1000).encode("cp1251"))


@pytest.mark.parametrize("word", ["Привет", "Ши", "ёж", "Ёлка"])
def test_utf8_cyrillic_read_as_windows_1251_is_a_suspect(word: str) -> None:
    mixed = ";".join(WORDS).encode("cp1251") + word.encode("utf-8")
    assert _may_hide(mixed)


@pytest.mark.parametrize("word", ["Привет", "Переговоры", "ООО «Клиент»", "Сделка №1"])
def test_the_byte_scan_finds_whatever_the_exact_pattern_finds(word: str) -> None:
    """The scan is a superset of the exact check the columns then run: it never misses what that would find."""
    as_cp1251 = word.encode("utf-8").decode("cp1251")
    assert _MOJIBAKE_RE.search(as_cp1251) is None or _may_hide(as_cp1251.encode("cp1251"))


@pytest.mark.parametrize("block", [3, 4, 1 << 20])
def test_bytes_are_counted_across_blocks(block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("voronka.io.columnar.BLOCK", block)
    raw = pa.py_buffer(b"a\nbb\n\nccc\x00\n" * 7)
    assert _count(raw, b"\n") == 28
    assert _count(raw, b"\x00", stop_at=1) >= 1
    assert _count(raw, b"z") == 0


def _cp1251_file(tmp_path: Path, lines: list[str], tail: bytes = b"") -> Path:
    path = tmp_path / "deals.csv"
    path.write_bytes("\n".join(lines).encode("cp1251") + tail)
    return path


@pytest.mark.parametrize("block", [64, 1 << 22])
def test_a_windows_1251_file_reads_as_python_decodes_it(
    block: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Transcoded block by block as Arrow parses: the same text whatever the blocks, and the same rows."""
    monkeypatch.setattr("voronka.io.columnar.MIN_BYTES", 0)
    monkeypatch.setattr("voronka.io.columnar.BLOCK", block)
    rows = [[str(i), WORDS[i % len(WORDS)] or "x", f"Этап {i % 3}", "€ — №"] for i in range(500)]
    path = _cp1251_file(tmp_path, [";".join(["ID", "Название", "Этап", "Заметка"]), *(";".join(r) for r in rows)])
    table = open_table(path)
    assert table.encoding == "cp1251"
    columns = read_columns(table)
    assert columns is not None
    assert [columns[i].to_pylist() for i in range(4)] == [list(c) for c in zip(*rows, strict=True)]


def test_a_byte_windows_1251_does_not_define_leaves_the_file_to_the_row_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("voronka.io.columnar.MIN_BYTES", 0)
    monkeypatch.setattr("voronka.io.columnar.BLOCK", 64)
    lines = ["ID;Название", *(f"{i};Сделка {i}" for i in range(200))]
    path = _cp1251_file(tmp_path, lines, b"\n201;\x98")
    table = open_table(path)
    assert table.encoding == "cp1251"
    assert read_columns(table) is None


def _slow_times(col: pa.Array, monkeypatch: pytest.MonkeyPatch) -> object:
    with monkeypatch.context() as mp:
        mp.setattr("voronka.io.columnar._fixed_width_times", lambda _: None)
        try:
            return times(col).tolist()
        except Doubt:
            return Doubt


@pytest.mark.parametrize("width", [10, 16, 19])
@pytest.mark.parametrize("seed", range(4))
def test_fixed_width_dates_read_as_strptime_and_the_row_reader_do(
    width: int, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read as bytes or by the format-by-format path: the same microseconds, and a value that is not a possible
    date (31.02, 29.02 of a common year, 24:00, a letter) leaves the column to that path."""
    rng = random.Random(seed)
    values: list[str | None] = []
    for _ in range(400):
        day, month, year = rng.randint(1, 31), rng.randint(1, 12), rng.choice([1900, 1970, 2000, 2024, 2025, 2100])
        clock = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
        text = f"{day:02d}.{month:02d}.{year:04d} {clock}"
        values.append(text[:width] if rng.random() > 0.1 else None)
    possible = []
    for v in values:
        try:
            possible.append(v if v is None or parse_datetime(v) else v)
        except ValueError:
            possible.append(None)
    bad = ["31.02.2025 10:00:00", "29.02.2100 10:00:00", "01.13.2025 10:00:00", "00.01.2025 10:00:00", "1a.01.2025"]
    bad += ["01.01.0000 00:00:00", "01.01.2025 24:00:00", "01.01.2025 23:60:00", "01.01.2025 23:59:60"]
    columns = [possible, values, *([*possible[:-1], b[:width]] for b in bad)]
    for column in columns:
        col = pa.array(column, pa.string())
        fixed = _fixed_width_times(col)
        slow = _slow_times(col, monkeypatch)
        if fixed is not None:
            assert fixed.tolist() == slow
            assert fixed.tolist() == [-1 if v is None else to_micros(parse_datetime(v)) for v in column]
        else:
            assert column is not possible  # a column of possible dates is always read as bytes


@pytest.mark.parametrize(
    ("ids", "unique"),
    [
        (["1", "2", "10"], True),
        (["1", "2", "1"], False),
        (["007", "7"], True),  # the same number, other texts: decided on the texts
        (["+7", "7", "7"], False),
        (["a-1", "b", "a-1"], False),
        (["a-1", "b"], True),
        (["1", None, "2"], True),
        (["1", None, None], False),
    ],
)
def test_duplicate_ids_are_found_whatever_they_look_like(ids: list[str | None], unique: bool) -> None:
    deals = DealColumns()
    deals.extend({"external_id": pa.array(ids, pa.string())})
    assert deals.unique_ids() is unique


def test_a_file_without_quotes_is_parsed_in_two_pieces_cut_at_a_line_break(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("voronka.io.columnar.BLOCK", 64)
    plain = tmp_path / "plain.csv"
    plain.write_bytes(b"\xef\xbb\xbfID;Name\n" + b"".join(b"%d;name %d\n" % (i, i) for i in range(100)))
    quoted = tmp_path / "quoted.csv"
    quoted.write_bytes(plain.read_bytes().replace(b"name 50", b'"name 50"'))
    with plain.open("rb") as fh:
        mapped = mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ)
    raw = pa.py_buffer(mapped).slice(3)
    (first, skip_header), (second, skip_none) = _pieces(raw, mapped)
    assert (skip_header, skip_none) == (1, 0)
    assert first.to_pybytes().endswith(b"\n") and first.to_pybytes() + second.to_pybytes() == raw.to_pybytes()
    with quoted.open("rb") as fh:
        mapped = mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ)
    assert len(_pieces(pa.py_buffer(mapped), mapped)) == 1
    monkeypatch.setattr("voronka.io.columnar.MIN_BYTES", 0)
    for path in (plain, quoted):
        columns = read_columns(open_table(path))
        assert columns is not None
        assert columns[0].to_pylist() == [str(i) for i in range(100)]
