"""Open a tabular file whatever wrote it: CSV in UTF-8 / UTF-8 with BOM / Windows-1251 with `;` `,` or tab,
XLSX, the HTML-table ``.xls`` old Bitrix24 versions export, and Parquet. Rows come out as lists of strings with
their line numbers, so every later problem can say where it is.
"""

from __future__ import annotations

import csv
import html.parser
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from voronka.errors import InputError

SAMPLE_BYTES = 1 << 20
csv.field_size_limit(1 << 30)  # long notes are values too; the default 128 KiB limit would crash the reader
DELIMITERS = (";", ",", "\t")
_UNDECODED = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept as surrogates


@dataclass
class Table:
    """A file's header and rows. ``rows`` yields ``(row_number, cells)``; the header is row 1."""

    path: Path
    kind: str
    encoding: str | None
    delimiter: str | None
    header: list[str]
    rows: Iterator[tuple[int, list[str]]]
    notes: list[str] = field(default_factory=list)


def sniff_encoding(sample: bytes) -> str:
    """UTF-8 with BOM, UTF-8, or (when the bytes are not UTF-8) Windows-1251."""
    if sample.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    try:
        sample[:-4].decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return "utf-8"  # the last bytes may be a character cut by the sample's end
    text = sample.decode("utf-8", errors="surrogateescape")
    head = text[:-4]
    bad = len(head) - len(_UNDECODED.sub("", head))  # counted without a list of a million matches
    good = len(text) - len(text.encode("ascii", "ignore")) - (len(text) - len(_UNDECODED.sub("", text)))
    # Mostly valid UTF-8 with a few bad bytes is a UTF-8 file with a few bad rows (each gets its own message).
    return "cp1251" if bad and bad >= good else "utf-8"


def sniff_delimiter(first_line: str) -> str:
    """The delimiter that splits the header line into the most fields (quotes respected)."""
    best, best_n = ",", 0
    for d in DELIMITERS:
        n = len(next(csv.reader([first_line], delimiter=d), []))
        if n > best_n:
            best, best_n = d, n
    return best


def open_table(path: str | Path, *, encoding: str | None = None, delimiter: str | None = None) -> Table:
    """Open ``path`` by its content and extension; see the module docstring for the formats."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"File {str(p)!r} does not exist; check the path.")
    with p.open("rb") as fh:
        head = fh.read(SAMPLE_BYTES)
    if head.startswith(b"PK\x03\x04"):
        return _xlsx(p)
    if head.startswith(b"PAR1"):
        return _parquet(p)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise InputError(
            f"{p.name} is a binary Excel 97-2003 (.xls) workbook, which Voronka does not read. Open it in "
            f"Excel or LibreOffice and save it as .xlsx or CSV."
        )
    enc = encoding or sniff_encoding(head)
    text_head = head.decode(enc, errors="replace").lstrip("\ufeff").lstrip()
    if text_head[:200].lower().startswith(("<html", "<!doctype html", "<table", "<meta", "<?xml")):
        return _html(p, enc, head)
    return _csv(p, enc, delimiter)


def _csv(p: Path, enc: str, delimiter: str | None) -> Table:
    with p.open("r", encoding=enc, errors="surrogateescape", newline="") as fh:
        first = fh.readline()
    if not first.strip():
        raise InputError(f"{p.name} is empty: the first line should be a header row with column names.")
    delim = delimiter or sniff_delimiter(first)

    def rows() -> Iterator[tuple[int, list[str]]]:
        with p.open("r", encoding=enc, errors="surrogateescape", newline="") as body:
            reader = csv.reader(body, delimiter=delim)
            next(reader, None)
            start = reader.line_num + 1
            for cells in reader:
                yield start, cells  # the line where the record starts, also when a value spans lines
                start = reader.line_num + 1

    header = [h.strip().lstrip("\ufeff") for h in next(csv.reader([first], delimiter=delim))]
    return Table(p, "csv", enc, delim, header, rows())


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _xlsx(p: Path) -> Table:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(p, read_only=True, data_only=True)
    except Exception as exc:
        raise InputError(f"{p.name} is not a readable .xlsx workbook ({exc}); save it again from Excel.") from exc
    ws = wb.worksheets[0]
    it = ws.iter_rows(values_only=True)
    header = [_cell(v).strip() for v in next(it, ())]

    def rows() -> Iterator[tuple[int, list[str]]]:
        for n, values in enumerate(it, start=2):
            cells = [_cell(v) for v in values]
            if any(cells):
                yield n, cells
        wb.close()

    notes = [f"sheet {ws.title!r} (the first of {len(wb.worksheets)})"] if len(wb.worksheets) > 1 else []
    return Table(p, "xlsx", None, None, header, rows(), notes)


def _parquet(p: Path) -> Table:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(p)
    header = list(pf.schema_arrow.names)

    def rows() -> Iterator[tuple[int, list[str]]]:
        n = 1
        for batch in pf.iter_batches(batch_size=65_536):
            for record in zip(*(c.to_pylist() for c in batch.columns), strict=True):
                n += 1
                yield n, [_cell(v) for v in record]

    return Table(p, "parquet", None, None, header, rows())


class _TableParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _html(p: Path, enc: str, head: bytes) -> Table:
    raw = p.read_bytes()
    low = head[:2048].lower()
    if b"charset=windows-1251" in low or b"charset=cp1251" in low:
        enc = "cp1251"
    elif b"charset=utf-8" in low:
        enc = "utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8"
    parser = _TableParser()
    parser.feed(raw.decode(enc, errors="replace"))
    if not parser.rows:
        raise InputError(f"{p.name} looks like HTML but has no <table> rows; export the data as CSV or XLSX.")
    header, body = parser.rows[0], parser.rows[1:]
    rows = ((n, cells) for n, cells in enumerate(body, start=2) if any(cells))
    return Table(p, "html", enc, None, header, rows, ["HTML table (an .xls export of an older Bitrix24)"])


def decode_problem(cells: list[str]) -> bool:
    """True when a row had bytes its encoding could not decode (kept as surrogates)."""
    return any(any("\udc80" <= ch <= "\udcff" for ch in c) for c in cells)
