"""The fast path for big, clean CSV files: read with Arrow, parse whole columns at once.

It accepts a file only when every value parses the way the row-by-row reader would parse it; at the first doubt
(an invalid row, a multi-line value, a value neither fast parser nor the row parser accepts) it returns None and
the row reader takes over, so problems are always reported with the exact line, column and value.
"""

from __future__ import annotations

import functools
import gc
import mmap
import re
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
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
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # the file's pages mapped at once, not faulted in one by one
THREADS = 2  # columns converted at once (Arrow's kernels run without the GIL)
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


try:  # numpy's switch for madvise(MADV_HUGEPAGE) on its big arrays
    from numpy._core.multiarray import _set_madvise_hugepage  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - numpy without it
    _set_madvise_hugepage = None

_PR_SET_THP_DISABLE, _PR_GET_THP_DISABLE = 41, 42


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """Linux's ``prctl`` (None elsewhere, or where it cannot be loaded)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        fn: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - a libc without it
        return None
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return fn


def _thp_disabled(off: bool | None = None) -> bool | None:
    """Whether transparent huge pages are off for this process (and, given ``off``, set so before returning
    the previous state); None where this cannot be asked."""
    prctl = _prctl()
    if prctl is None:
        return None
    before = prctl(_PR_GET_THP_DISABLE, 0, 0, 0, 0)
    if before < 0:  # pragma: no cover - a kernel without it (before 3.15)
        return None
    if off is not None and off != bool(before) and prctl(_PR_SET_THP_DISABLE, int(off), 0, 0, 0) != 0:
        return None  # pragma: no cover
    return bool(before)


@contextmanager
def small_pages() -> Iterator[None]:
    """Ordinary pages for this process's fresh memory while this runs. With transparent huge pages on request
    (``madvise``, as here), numpy asks for them on its big arrays and Arrow's allocator (mimalloc) on its whole
    1 GiB arena: each such page is zeroed whole when first touched (2 MiB for a few bytes used) and may stall on
    the kernel compacting memory. A big import spent seconds of system time so: numpy's alone, 14.5-17.3 CPU s
    against 19.0-19.5; then Arrow's, 1.2-2 CPU s of reading a million rows (see docs/architecture.md).

    On Linux the whole process is switched (``prctl(PR_SET_THP_DISABLE)``, other threads included, back as it
    was after); elsewhere numpy's own switch.
    """
    before = _thp_disabled(True)
    if before is not None:
        try:
            yield
        finally:
            _thp_disabled(before)
        return
    if _set_madvise_hugepage is None:
        yield
        return
    numpy_before = _set_madvise_hugepage(False)
    try:
        yield
    finally:
        _set_madvise_hugepage(numpy_before)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cycle collector paused while a big file is read or lands (back as it was after). Its objects (row
    references, strings, the batch's lists) live until the end of the import, and the collector went through them
    again and again as they grew: 0.2-0.25 CPU s of a million-row import. Reference counting still frees what
    is dropped; cycles wait for the next collection."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


@contextmanager
def big_load() -> Iterator[None]:
    """What a big file's read and its landing run under: ordinary pages for fresh memory (``small_pages``) and no
    cycle collections (``gc_paused``). Also a decorator."""
    with small_pages(), gc_paused():
        yield


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

    with table.path.open("rb") as fh:  # mapped, not read: no fresh memory to fault in for the file's bytes
        raw: bytes | mmap.mmap = mmap.mmap(fh.fileno(), 0, flags=mmap.MAP_SHARED | _POPULATE, prot=mmap.PROT_READ)
    start = 0  # past a BOM
    cp1251 = table.encoding == "cp1251"  # parsed as bytes, each column decoded by itself (_from_cp1251)
    if raw[:3] == b"\xef\xbb\xbf":
        start = 3
    elif (table.encoding or "utf-8") not in ("utf-8", "utf-8-sig", "cp1251"):
        try:
            raw = raw[:].decode(table.encoding or "utf-8").encode("utf-8")
        except UnicodeError:
            return None
    # Whole-file checks first (one pass each); the exact per-column checks run only when these find something.
    nul = raw.find(b"\x00", start) != -1
    kind = pa.binary() if cp1251 else pa.string()
    try:
        data = pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(raw).slice(start)),
            read_options=pacsv.ReadOptions(encoding="utf8", column_names=names, skip_rows=1, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(
                delimiter=table.delimiter or ",", newlines_in_values=True, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(column_types={n: kind for n in names}, strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    if invalid:
        return None
    # One line per row (and the header): no value holds a line break.
    lines = _count(raw, b"\n", start) + (0 if raw[-1:] == b"\n" else 1)
    multiline = lines != data.num_rows + 1
    suspects: set[str] = set()  # columns where UTF-8 text may hide in a Windows-1251 file (mojibake)
    if cp1251:
        with ThreadPoolExecutor(THREADS) as pool:
            decoded = list(pool.map(lambda name: _from_cp1251(data.column(name).combine_chunks()), names))
        if any(d is None for d in decoded):
            return None
        data = pa.table({name: d[0] for name, d in zip(names, decoded, strict=True) if d is not None})
        suspects = {name for name, d in zip(names, decoded, strict=True) if d is not None and d[1]}

    def trimmed(name: str) -> pa.Array | None:
        chunks = data.column(name)  # one chunk after decoding (combine_chunks would copy it all the same)
        col = chunks.chunk(0) if chunks.num_chunks == 1 else chunks.combine_chunks()
        if _may_need_trim(col):
            col = pc.utf8_trim_whitespace(col)
        if multiline and pc.any(pc.match_substring(col, "\n")).as_py():
            return None  # line numbers would no longer match rows
        if nul and pc.any(pc.match_substring(col, "\x00")).as_py():
            return None  # NUL characters get their message on the row path
        if name in suspects and _looks_mojibake(col):
            return None
        return _empty_as_null(col)

    with ThreadPoolExecutor(THREADS) as pool:  # Arrow's kernels let go of the GIL: a column per core
        columns = list(pool.map(trimmed, names))
    if any(col is None for col in columns):
        return None
    out = Columns(enumerate(columns))
    out.raw = data
    return out


# Bytes that may start or end a whitespace character in UTF-8: ASCII controls and space; the lead bytes of
# U+0085, U+00A0 (C2), U+1680 (E1), U+2000-U+205F (E2), U+3000 (E3); and, before a last byte of 80-BF, the bytes
# that precede the last byte of those characters (C2 for U+0085/U+00A0; 80, 81, 9A for the three-byte ones).
_WS_FIRST = np.zeros(256, bool)
_WS_FIRST[[*range(0x21), 0x7F, 0xC2, 0xE1, 0xE2, 0xE3]] = True
_WS_LAST = np.zeros(256, bool)
_WS_LAST[[*range(0x21), 0x7F]] = True
_WS_BEFORE_LAST = np.zeros(256, bool)
_WS_BEFORE_LAST[[0x80, 0x81, 0x9A]] = True


def _may_need_trim(col: pa.Array) -> bool:
    """False when no value can start or end with whitespace (a look at each value's first and last bytes):
    trimming would change nothing. True is only a maybe."""
    _, offsets_buf, data_buf = col.buffers()
    if data_buf is None or not data_buf.size:
        return False
    offsets = np.frombuffer(offsets_buf, np.int32)[col.offset : col.offset + len(col) + 1]
    data = np.frombuffer(data_buf, np.uint8)
    filled = offsets[1:] > offsets[:-1]
    first, end = offsets[:-1][filled], offsets[1:][filled] - 1
    last, before = data[end], data[np.maximum(end - 1, 0)]
    wide = last >= 0x80
    return bool(
        _WS_FIRST[data[first]].any()
        or _WS_LAST[last].any()
        or (wide & _WS_BEFORE_LAST[before]).any()
        or (wide & (before == 0xC2) & ((last == 0x85) | (last == 0xA0))).any()
    )


# UTF-8 bytes beyond the first of each Windows-1251 byte (0x98, undefined there, fails to decode before this counts)
_CP1251_EXTRA = np.array([len(bytes([b]).decode("cp1251", "replace").encode()) - 1 for b in range(256)], np.uint8)


def _from_cp1251(col: pa.Array) -> tuple[pa.Array, bool] | None:
    """A column of Windows-1251 bytes as UTF-8 strings, and whether its text may hide mojibake; None when a
    byte is not Windows-1251. ASCII columns are the same bytes; few distinct values are decoded once each; the
    rest is decoded in one piece, the offsets moved by each byte's UTF-8 length."""
    validity, offsets_buf, data_buf = col.buffers()
    if data_buf is None or not len(col):
        return col.cast(pa.string()), False
    offsets = np.frombuffer(offsets_buf, np.int32)[col.offset : col.offset + len(col) + 1]
    data = np.frombuffer(data_buf, np.uint8)[offsets[0] : offsets[-1]]
    if not len(data) or data.max() < 0x80:  # a reduction: no temporary array the size of the column
        return col.view(pa.string()), False
    try:
        if len(col.slice(0, 4096).unique()) * 8 < min(len(col), 4096):  # repeated values: decode each once
            codes = col.dictionary_encode()
            values = [v.decode("cp1251") for v in codes.dictionary.to_pylist()]
            decoded = pa.array(values, pa.string()).take(codes.indices)
            return decoded, any(_MOJIBAKE_RE.search(v) for v in values)
        text = data.tobytes().decode("cp1251").encode("utf-8")
    except UnicodeDecodeError:
        return None
    # Each value grows by the extra bytes of its characters: summed per value, not as a running total per byte
    # (fresh memory costs more than arithmetic here).
    starts = offsets[:-1] - offsets[0]
    sizes = np.diff(offsets)
    per_byte = np.zeros(len(data) + 1, np.uint8)  # one more: empty values at the end start past the last byte
    np.take(_CP1251_EXTRA, data, out=per_byte[:-1])
    extra = np.add.reduceat(per_byte, starts, dtype=np.int64)
    extra[sizes == 0] = 0  # reduceat gives an empty value the next value's first byte
    moved = np.concatenate([[0], np.cumsum(sizes + extra)])
    if moved[-1] >= 2**31:
        return None  # past 32-bit offsets: the row reader copes
    decoded = pa.StringArray.from_buffers(
        len(col), pa.py_buffer(moved.astype(np.int32)), pa.py_buffer(text), validity, col.null_count
    )
    return decoded, bool(pc.match_substring_regex(_one_string(text), _MOJIBAKE)[0].as_py())


def _empty_as_null(col: pa.Array) -> pa.Array:
    """The same strings, with empty ones null: a new validity bitmap over the same buffers, no copy."""
    if col.offset:
        return pc.if_else(pc.equal(col, ""), pa.scalar(None, col.type), col)
    valid = pc.greater(pc.binary_length(col), 0)
    if col.null_count:
        valid = pc.and_(valid, pc.is_valid(col))
    bitmap = valid.buffers()[1] if valid.null_count == 0 else pc.fill_null(valid, False).buffers()[1]
    _, offsets, values = col.buffers()
    return pa.Array.from_buffers(col.type, len(col), [bitmap, offsets, values])


def _count(raw: bytes | mmap.mmap, byte: bytes, start: int) -> int:
    """How many times ``byte`` occurs in ``raw`` from ``start``: a mapped file in slices of 4 MiB (no copy of it)."""
    if isinstance(raw, bytes):
        return raw.count(byte, start)
    return sum(raw[at : at + (4 << 20)].count(byte) for at in range(start, len(raw), 4 << 20))


def _one_string(raw: bytes) -> pa.Array:
    """The whole file as one Arrow string, without a copy: for a single regex pass over everything."""
    return pa.Array.from_buffers(
        pa.large_string(), 1, [None, pa.array([0, len(raw)], pa.int64()).buffers()[1], pa.py_buffer(raw)]
    )


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


def text(columns: dict[int, pa.Array], mapping: Mapping, name: str, n: int) -> pa.Array:
    """A text field of every row (null where empty): its column, renamed values applied, or the constant."""
    i = mapping.columns.get(name)
    if i is None:
        return pa.array([mapping.constants.get(name)] * n, pa.string())
    values = columns[i]
    renamed = mapping.values.get(name)
    if renamed:
        values = pa.array([renamed.get(v, v) if v is not None else None for v in values.to_pylist()], pa.string())
    return values


def _each(values: pa.Array, todo: np.ndarray, parse: Callable[[str], Any]) -> list[Any]:
    out = []
    for v in values.filter(pa.array(todo)).to_pylist():
        try:
            out.append(parse(v))
        except ValueError:
            raise Doubt from None
    return out


def amounts(col: pa.Array) -> pa.Array:
    """Decimals (24, 4) from a column of amounts; plain ones (``1234``, ``1 234,50``) parsed at once."""
    if pc.all(pc.match_substring_regex(col, _PLAIN_NUMBER)).as_py() is not False:
        return pc.cast(col, pa.decimal128(24, 4))  # digits only, as exports mostly write them: nothing to clean
    squeezed = pc.replace_substring_regex(col, "[ \u00a0\u202f']", "")
    comma = pc.replace_substring(squeezed, ",", ".", max_replacements=1)
    plain = pc.fill_null(pc.match_substring_regex(comma, _PLAIN_NUMBER), True)
    values = pc.cast(pc.if_else(plain, comma, None), pa.decimal128(24, 4))
    todo = ~np.asarray(plain)
    if not todo.any():
        return values
    out: list[Any] = values.to_pylist()
    for i, v in zip(np.flatnonzero(todo).tolist(), _each(col, todo, parse_decimal), strict=True):
        if v < 0:
            raise Doubt
        out[i] = v
    try:
        return pa.array(out, pa.decimal128(24, 4))
    except (pa.ArrowInvalid, ValueError):
        raise Doubt from None  # more than 4 decimals: the row reader says what to do


def _formats_by_use(col: pa.Array) -> list[str]:
    """The date formats, those that parse the first values first: each accepts whole values only, so no value
    parses in two, and the order only saves passes over the column."""
    sample = col.drop_null().slice(0, 64)
    hits = {
        f: pc.sum(pc.is_valid(pc.strptime(sample, format=f, unit="us", error_is_null=True))).as_py() or 0
        for f in _DATE_FORMATS
    }
    return sorted(_DATE_FORMATS, key=lambda f: -hits[f])


# ``dd.mm.yyyy[ hh:mm[:ss]]`` by width: where the digits are (pairs, then the year's last two), and the separators
_FIXED = {
    10: ((0, 3, 6, 8), {2: ".", 5: "."}),
    16: ((0, 3, 6, 8, 11, 14), {2: ".", 5: ".", 10: " ", 13: ":"}),
    19: ((0, 3, 6, 8, 11, 14, 17), {2: ".", 5: ".", 10: " ", 13: ":", 16: ":"}),
}
_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _fixed_width_times(col: pa.Array) -> np.ndarray | None:
    """Integer microseconds (UTC) when every value is ``dd.mm.yyyy``, ``dd.mm.yyyy hh:mm`` or ``dd.mm.yyyy
    hh:mm:ss`` with two-digit fields, all of one width, and a possible date and time; else None.

    Such columns (what Russian Excel and CRMs write) are read as a matrix of bytes: digits and separators checked,
    fields computed, in a few passes of numpy over the column, without strptime.
    """
    valid = col.drop_null() if col.null_count else col
    if not len(valid):
        return None
    offsets = np.frombuffer(valid.buffers()[1], np.int32)[valid.offset : valid.offset + len(valid) + 1]
    width = int(offsets[1] - offsets[0])
    if width not in _FIXED or int(offsets[-1] - offsets[0]) != width * len(valid):
        return None
    if not (np.diff(offsets) == width).all():
        return None
    text = np.frombuffer(valid.buffers()[2], np.uint8)[offsets[0] : offsets[-1]].reshape(-1, width)
    starts, separators = _FIXED[width]
    if any((text[:, at] != ord(sep)).any() for at, sep in separators.items()):
        return None
    pairs = []
    for at in starts:
        tens, ones = text[:, at] - np.uint8(48), text[:, at + 1] - np.uint8(48)  # wraps past 9 unless a digit
        if (tens > 9).any() or (ones > 9).any():
            return None
        pairs.append(tens.astype(np.int64) * 10 + ones)
    day, month, century, year, *clock = pairs
    year = century * 100 + year
    hour, minute, second = [*clock, 0, 0, 0][:3]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_ok = (month >= 1) & (month <= 12)
    last_day = _DAYS[np.where(month_ok, month, 0)] + (leap & (month == 2))
    if not (month_ok & (day >= 1) & (day <= last_day) & (year >= 1)).all():
        return None
    if width > 10 and ((hour > 23) | (minute > 59) | (second > 59)).any():
        return None
    # Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil)
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    micros = (((days * 24 + hour) * 60 + minute) * 60 + second) * 1_000_000
    if not col.null_count:
        return micros
    out = np.full(len(col), -1, np.int64)
    out[np.asarray(pc.is_valid(col), dtype=bool)] = micros
    return out


def times(col: pa.Array) -> np.ndarray:
    """Integer microseconds (UTC) from a column of dates; -1 for empty values.

    A column of fixed-width ``dd.mm.yyyy[ hh:mm[:ss]]`` values is read as bytes (``_fixed_width_times``).
    Otherwise each format is tried only on the values no earlier format parsed. Arrow rolls impossible dates
    over (31.02 -> 03.03), so a parse that lands on day 1-3 of a month is kept only if it formats back to the input.
    """
    fixed = _fixed_width_times(col)
    if fixed is not None:
        return fixed
    out = np.full(len(col), -1, np.int64)
    todo = np.asarray(pc.is_valid(col), dtype=bool)
    for fmt in _formats_by_use(col):
        if not todo.any():
            break
        where = np.flatnonzero(todo)
        sub = col.take(pa.array(where))
        attempt = pc.strptime(sub, format=fmt, unit="us", error_is_null=True)
        ok = np.asarray(pc.is_valid(attempt), dtype=bool)
        if not ok.any():
            continue
        early = ok & np.asarray(pc.fill_null(pc.less_equal(pc.day(attempt), 3), False), dtype=bool)
        if early.any():
            pick = pa.array(np.flatnonzero(early))
            back = pc.equal(pc.strftime(attempt.take(pick), format=fmt), sub.take(pick))
            ok[np.flatnonzero(early)] = np.asarray(pc.fill_null(back, False), dtype=bool)
        micros = np.asarray(pc.fill_null(pc.cast(attempt, pa.int64()), -1))
        out[where[ok]] = micros[ok]
        todo[where[ok]] = False
    if todo.any():
        out[todo] = [to_micros(v) for v in _each(col, todo, parse_datetime)]
    return out


def _has_json_special(col: pa.Array) -> bool:
    """Whether the strings' data holds a byte JSON text must escape (a control character, ``"`` or ``\\``): numpy
    comparisons over the buffer in place, 1 MiB at a time (a regex byte class took 0.2 s for 44 MiB, this 5 ms)."""
    _, offsets_buf, data_buf = col.buffers()
    if data_buf is None:
        return False
    offsets = np.frombuffer(offsets_buf, np.int32)[col.offset : col.offset + len(col) + 1]
    data = np.frombuffer(data_buf, np.uint8)[offsets[0] : offsets[-1]]
    for at in range(0, len(data), 1 << 20):
        part = data[at : at + (1 << 20)]
        if part.min() < 0x20 or (part == ord('"')).any() or (part == ord("\\")).any():
            return True
    return False


def custom_json(columns: dict[int, pa.Array], extra: list[tuple[int, str]], n: int) -> pa.Array:
    """The extra columns of each row as JSON text, leaving out empty values (as the row reader does)."""
    if not extra:
        return pa.nulls(n, pa.string())
    pieces = []
    filled = None  # rows with a value in some extra column
    for i, header in extra:
        col = columns[i]
        if col.null_count == len(col):
            continue
        if _has_json_special(col):  # a byte scan first: these are rare
            if pc.any(pc.match_substring_regex(col, "[\\x00-\\x1f]")).as_py():
                raise Doubt  # control characters: let json.dumps escape them on the row path
            if pc.any(pc.match_substring_regex(col, '["\\\\]')).as_py():
                col = pc.replace_substring(pc.replace_substring(col, "\\", "\\\\"), '"', '\\"')
        key = encode_basestring(header) + ':"'
        pieces.append(pc.binary_join_element_wise(key, col, '",', ""))  # null where the value is empty
        filled = pc.is_valid(col) if filled is None else pc.or_(filled, pc.is_valid(col))
    if not pieces:
        return pa.nulls(n, pa.string())
    # Every piece ends with a comma: the last one's becomes the closing brace, in a copy of the joined text, which
    # is null where no piece is (its validity is ``filled``'s values).
    joined = pc.binary_join_element_wise("{", *pieces, "", null_handling="replace", null_replacement="")
    _, offsets, data = joined.buffers()
    text = np.frombuffer(data, np.uint8).copy()
    text[np.frombuffer(offsets, np.int32)[1 : n + 1] - 1] = ord("}")
    return pa.Array.from_buffers(pa.string(), n, [filled.buffers()[1], offsets, pa.py_buffer(text)])
