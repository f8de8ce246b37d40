"""The fast reader: Windows-1251 columns decoded as Python decodes them (on each of its three paths), dates read
as the row reader reads them, duplicate ids found."""

from __future__ import annotations

import mmap
import random
from pathlib import Path

import pyarrow as pa
import pytest

from voronka.io import columnar
from voronka.io.batch import DealColumns
from voronka.io.columnar import Doubt, _count, _fixed_width_times, _from_cp1251, read_columns, small_pages, times
from voronka.io.tables import open_table
from voronka.io.values import parse_datetime
from voronka.store.types import to_micros

WORDS = ["Сделка №1", "ООО «Клиент»", "", "Переговоры", "€ 5 — ок", "plain ascii", "Ёлка, ёж, Ш", "Р°С"]


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


@pytest.mark.parametrize("repeat", [1, 5000], ids=["repeated", "distinct"])
def test_utf8_text_in_a_cp1251_column_is_a_suspect_and_an_undefined_byte_a_refusal(repeat: int) -> None:
    utf8 = [f"Привет {i % repeat}".encode() for i in range(5000)]  # read as cp1251: "РџСЂРёРІРµС‚"
    decoded = _from_cp1251(pa.array(utf8, pa.binary()))
    assert decoded is not None and decoded[1] is True
    undefined = [b"ok \x98", *[f"v{i % repeat}".encode("cp1251") for i in range(4999)]]
    assert _from_cp1251(pa.array(undefined, pa.binary())) is None


def _cp1251_file(tmp_path: Path, lines: list[str], tail: bytes = b"") -> Path:
    path = tmp_path / "deals.csv"
    path.write_bytes("\n".join(lines).encode("cp1251") + tail)
    return path


def test_a_windows_1251_file_reads_as_python_decodes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("voronka.io.columnar.MIN_BYTES", 0)
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


def test_line_breaks_are_counted_in_a_mapped_file_across_its_slices(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(b"\xef\xbb\xbf" + b"x;y\n" * 3_000_000)  # 12 MiB: three slices
    with path.open("rb") as fh:
        mapped = mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ)
    assert _count(mapped, b"\n", 3) == _count(path.read_bytes(), b"\n", 3) == 3_000_000


def test_small_pages_turns_huge_pages_off_and_back(monkeypatch: pytest.MonkeyPatch) -> None:
    from numpy._core.multiarray import _set_madvise_hugepage

    if columnar._thp_disabled() is not None:  # Linux: the whole process, every allocator (Arrow's too)
        columnar._thp_disabled(False)
        with small_pages():
            assert columnar._thp_disabled() is True
            with small_pages():  # nested: still off, and off again after the inner one
                assert columnar._thp_disabled() is True
            assert columnar._thp_disabled() is True
        assert columnar._thp_disabled() is False
        columnar._thp_disabled(True)
        with small_pages():  # already off before: left off after
            pass
        assert columnar._thp_disabled() is True
        columnar._thp_disabled(False)
    # Elsewhere numpy's own switch: off inside, back after
    monkeypatch.setattr(columnar, "_thp_disabled", lambda off=None: None)
    before = _set_madvise_hugepage(True)
    try:
        with small_pages():
            assert _set_madvise_hugepage(False) is False  # off inside
        assert _set_madvise_hugepage(True) is True  # back on after
    finally:
        _set_madvise_hugepage(before)


@pytest.mark.parametrize(
    ("values", "special"),
    [
        (["ООО «Клиент»", None, "+7 900 0000000"], False),
        (["a", 'say "hi"'], True),
        (["a", "back\\slash"], True),
        (["a", "tab\there"], True),
        (["\x1f"], True),
        (["x" * (3 << 20), "end\n"], True),  # past the first MiB
    ],
)
def test_json_special_bytes_are_found_in_any_value(values: list[str | None], special: bool) -> None:
    col = pa.array(values, pa.string())
    assert columnar._has_json_special(col) is special
    assert columnar._has_json_special(col.slice(1)) is (special and any(v and v != values[0] for v in values[1:]))


def test_gc_paused_pauses_the_collector_and_puts_it_back() -> None:
    import gc

    assert gc.isenabled()
    with columnar.gc_paused():
        assert not gc.isenabled()
        with columnar.gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner one leaves it paused for the outer one
    assert gc.isenabled()
    gc.disable()
    try:
        with columnar.gc_paused():
            pass
        assert not gc.isenabled()  # paused before: left so
    finally:
        gc.enable()
