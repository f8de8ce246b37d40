"""The fast path for big, clean CSV files: read with Arrow, parse whole columns at once.

It accepts a file only when every value parses the way the row-by-row reader would parse it; at the first doubt
(an invalid row, a multi-line value, a value neither fast parser nor the row parser accepts) it returns None and
the row reader takes over, so problems are always reported with the exact line, column and value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from voronka.io.mapping import Mapping
from voronka.io.tables import Table
from voronka.io.values import parse_datetime, parse_decimal
from voronka.store.types import to_micros

MIN_BYTES = 4 << 20  # smaller files are read row by row: the fast path's set-up is not worth it
_DATE_FORMATS = (
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d",
)
_PLAIN_NUMBER = r"^[0-9]{1,13}(\.[0-9]{1,4})?$"
# A UTF-8 Cyrillic letter read as Windows-1251 shows as Р or С followed by one of these.
# Two Cyrillic letters in UTF-8 read as Windows-1251 ("Пр" -> "РџСЂ"): a run of two such pairs. One pair alone
# ("Р«") is too often real text to refuse a row for it.
_MOJIBAKE_PAIR = "[РС][\u0402-\u040f\u0452-\u045f\u0490\u0491\u00a0-\u00bf\u2013-\u203a\u20ac\u2116\u2122]"
_MOJIBAKE = f"(?:{_MOJIBAKE_PAIR}){{2}}"


class Doubt(Exception):
    """Something the fast path will not decide; the row reader will."""


class Columns(dict[int, pa.Array]):
    """Column index -> trimmed strings (empty as null); ``raw`` keeps the cells exactly as written."""

    raw: pa.Table


def read_columns(table: Table) -> Columns | None:
    """All columns of a CSV as trimmed strings (empty as null), or None when the file is not simple enough."""
    if table.kind != "csv" or table.path.stat().st_size < MIN_BYTES:
        return None
    names = [f"c{i}" for i in range(len(table.header))]
    invalid: list[Any] = []

    def on_invalid(row: Any) -> str:
        invalid.append(row)
        return "skip"

    encoding = {"utf-8-sig": "utf8", "utf-8": "utf8"}.get(table.encoding or "utf-8", table.encoding or "utf8")
    try:
        data = pacsv.read_csv(
            table.path,
            read_options=pacsv.ReadOptions(encoding=encoding, column_names=names, skip_rows=1, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(
                delimiter=table.delimiter or ",", newlines_in_values=True, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    if invalid:
        return None
    out = Columns()
    out.raw = data
    for i, name in enumerate(names):
        col = pc.utf8_trim_whitespace(data.column(name).combine_chunks())
        if pc.any(pc.match_substring(col, "\n")).as_py() or pc.any(pc.match_substring(col, "\x00")).as_py():
            return None  # line numbers would no longer match rows; NUL characters get their message there
        if table.encoding == "cp1251" and _looks_mojibake(col):
            return None
        out[i] = pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)
    return out


_MOJIBAKE_RE = re.compile(_MOJIBAKE)


def _looks_mojibake(col: pa.Array) -> bool:
    suspects = col.filter(pc.fill_null(pc.match_substring_regex(col, _MOJIBAKE), False))
    return any(is_mojibake(v) for v in suspects.unique().to_pylist())


def is_mojibake(value: str) -> bool:
    """True when Windows-1251 text is really UTF-8 Cyrillic (a UTF-8 row inside a cp1251 file): the pattern of
    mojibake, bytes that are valid UTF-8, and Cyrillic letters once decoded so."""
    if not _MOJIBAKE_RE.search(value):
        return False
    try:
        decoded = value.encode("cp1251").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return False
    return any("\u0400" <= ch <= "\u04ff" for ch in decoded)


def text(columns: dict[int, pa.Array], mapping: Mapping, name: str, n: int) -> list[str | None]:
    i = mapping.columns.get(name)
    if i is None:
        return [mapping.constants.get(name)] * n
    values = columns[i].to_pylist()
    renamed = mapping.values.get(name)
    if renamed:
        values = [renamed.get(v, v) if v is not None else None for v in values]
    return values


def _each(values: pa.Array, todo: np.ndarray, parse: Callable[[str], Any]) -> list[Any]:
    out = []
    for v in values.filter(pa.array(todo)).to_pylist():
        try:
            out.append(parse(v))
        except ValueError:
            raise Doubt from None
    return out


def amounts(col: pa.Array) -> list[Any]:
    """Decimals from a column of amounts; plain ones (``1234``, ``1 234,50``) parsed at once."""
    squeezed = pc.replace_substring_regex(col, "[ \u00a0\u202f']", "")
    comma = pc.replace_substring(squeezed, ",", ".", max_replacements=1)
    plain = pc.fill_null(pc.match_substring_regex(comma, _PLAIN_NUMBER), True)
    values: list[Any] = pc.cast(pc.if_else(plain, comma, None), pa.decimal128(24, 4)).to_pylist()
    todo = ~np.asarray(plain)
    if todo.any():
        for i, v in zip(np.flatnonzero(todo).tolist(), _each(col, todo, parse_decimal), strict=True):
            if v < 0:
                raise Doubt
            values[i] = v
    return values


def times(col: pa.Array) -> np.ndarray:
    """Integer microseconds (UTC) from a column of dates; -1 for empty values."""
    parsed = pa.nulls(len(col), pa.timestamp("us"))
    for fmt in _DATE_FORMATS:
        attempt = pc.strptime(col, format=fmt, unit="us", error_is_null=True)
        # Arrow rolls impossible dates over (31.02 -> 03.03): keep a parse only if it formats back to the input.
        exact = pc.fill_null(pc.equal(pc.strftime(attempt, format=fmt), col), False)
        parsed = pc.coalesce(parsed, pc.if_else(exact, attempt, None))
    out = np.asarray(pc.fill_null(pc.cast(parsed, pa.int64()), -1))
    todo = (out == -1) & np.asarray(pc.is_valid(col))
    if todo.any():
        out = out.copy()
        out[todo] = [to_micros(v) for v in _each(col, todo, parse_datetime)]
    return out


def custom_json(columns: dict[int, pa.Array], extra: list[tuple[int, str]], n: int) -> list[str | None]:
    """The extra columns of each row as JSON text, leaving out empty values (as the row reader does)."""
    if not extra:
        return [None] * n
    pieces = []
    for i, header in extra:
        col = columns[i]
        if pc.any(pc.match_substring_regex(col, "[\\x00-\\x1f]")).as_py():
            raise Doubt  # control characters: let json.dumps escape them on the row path
        quoted = pc.replace_substring(pc.replace_substring(col, "\\", "\\\\"), '"', '\\"')
        key = encode_basestring(header) + ':"'
        pieces.append(pc.binary_join_element_wise(key, quoted, '"', ""))
    # Join with a control character (none are left in the values), squeeze the gaps of empty values, then turn
    # it into commas. (null_handling="skip" would drop a row whose pieces are all empty.)
    gap = "\x1f"
    joined = pc.binary_join_element_wise(*[pc.fill_null(p, "") for p in pieces], gap)
    joined = pc.utf8_trim(pc.replace_substring_regex(joined, gap + "+", gap), gap)
    body = pc.binary_join_element_wise("{", pc.replace_substring(joined, gap, ","), "}", "")
    return pc.if_else(pc.equal(joined, ""), pa.scalar(None, pa.string()), body).to_pylist()
