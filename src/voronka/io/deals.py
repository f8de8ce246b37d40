"""Read deals (and stage histories) from CSV / XLSX / HTML-xls / Parquet files into an :class:`ImportBatch`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from voronka.errors import InputError
from voronka.io import columnar
from voronka.io.batch import DealRecord, ImportBatch, MoveRecord, RowRef
from voronka.io.columnar import is_mojibake
from voronka.io.mapping import DEAL_FIELDS, MOVE_FIELDS, Mapping, detect, load_mapping, resolve_column
from voronka.io.tables import Table, decode_problem, open_table
from voronka.io.values import parse_datetime, parse_decimal
from voronka.store.types import to_micros


def table_and_mapping(
    path: str | Path, mapping: str | Path | None, fields: dict[str, tuple[str, ...]] = DEAL_FIELDS
) -> tuple[Table, Mapping]:
    table = open_table(path)
    found = detect(table.header, fields)
    if mapping:
        given = load_mapping(mapping, table.header, fields)
        taken = set(given.columns.values())
        # The file's mapping wins; detected fields keep only the columns it leaves free.
        kept = {f: i for f, i in found.columns.items() if i not in taken and f not in given.constants}
        found = Mapping({**kept, **given.columns}, given.constants, given.values)
    return table, found


class _Row:
    """One row's cells with the mapping, recording a problem for each bad value."""

    def __init__(self, batch: ImportBatch, table: Table, mapping: Mapping, n: int, cells: list[str]) -> None:
        self.batch, self.table, self.mapping, self.cells = batch, table, mapping, cells
        self.ref = RowRef(batch.file, n)
        self.ok = True

    def bad(self, column: str | None, value: str | None, reason: str) -> None:
        self.ok = False
        self.batch.problem(self.ref, column, value, reason, self.cells)

    def text(self, name: str) -> str | None:
        i = self.mapping.columns.get(name)
        if i is None:
            return self.mapping.constants.get(name)
        value = self.cells[i].strip() if i < len(self.cells) else ""
        renamed = self.mapping.values.get(name)
        if renamed and value in renamed:
            value = renamed[value]
        return value or None

    def parsed(self, name: str, parse: Callable[[str], Any]) -> Any:
        raw = self.text(name)
        if raw is None:
            return None
        try:
            return parse(raw)
        except ValueError as exc:
            i = self.mapping.columns.get(name)
            self.bad(self.table.header[i] if i is not None else name, raw, str(exc))
            return None

    def shape_ok(self) -> bool:
        width = len(self.table.header)
        if any("\x00" in c for c in self.cells):
            self.bad(None, None, "a NUL character (\\x00) in the row: the file is damaged or binary; remove it")
            return False
        if self.table.encoding == "cp1251" and any(is_mojibake(c) for c in self.cells if c):
            self.bad(
                None,
                next(c for c in self.cells if c and is_mojibake(c))[:40],
                "UTF-8 text in a Windows-1251 file: the file mixes encodings; save it again as UTF-8",
            )
            return False
        if decode_problem(self.cells):
            shown = next(c for c in self.cells if decode_problem([c])).encode("utf-8", "surrogateescape")
            self.bad(
                None,
                shown.decode("utf-8", "replace")[:40],
                f"bytes that are not valid {self.table.encoding} text: the file mixes encodings; save it "
                f"again as UTF-8",
            )
            return False
        if len(self.cells) < width:
            self.bad(
                None,
                self.batch.file and ";".join(self.cells)[:60],
                f"{len(self.cells)} fields where the header has {width}: a truncated line?",
            )
            return False
        if len(self.cells) > width and any(c.strip() for c in self.cells[width:]):
            self.bad(
                None,
                ";".join(self.cells)[:60],
                f"{len(self.cells)} fields where the header has {width}: an unquoted delimiter inside a value?",
            )
            return False
        return True


def _require(mapping: Mapping, table: Table, names: tuple[str, ...], what: str) -> None:
    missing = [n for n in names if n not in mapping.columns and n not in mapping.constants]
    if missing:
        shown = ", ".join(repr(h) for h in table.header[:30])
        raise InputError(
            f"{table.path.name}: no column found for {', '.join(missing)} ({what}). Columns are: {shown}. "
            f"Write a mapping file (`voronka import preview {table.path.name}` prints a draft) and pass --mapping."
        )


def _amount(raw: str) -> Any:
    value = parse_decimal(raw)
    if value < 0:
        raise ValueError("a negative amount; amounts are zero or more")
    return value


def read_deals(
    path: str | Path,
    *,
    mapping: str | Path | None = None,
    pipeline: str | None = None,
    source: str = "file",
    currency: str = "RUB",
    now: datetime | None = None,
) -> ImportBatch:
    """Read a deals file: one row per deal in its current stage (a snapshot)."""
    table, cols = table_and_mapping(path, mapping)
    if pipeline:
        cols.constants["pipeline"] = pipeline
    cols.constants.setdefault("currency", currency)
    _require(
        cols,
        table,
        ("title", "stage", "pipeline"),
        "the deal's title, stage and pipeline; --pipeline P names the pipeline when the file has no such column",
    )
    batch = ImportBatch(source=source, file=table.path.name, header=table.header, enforce_reasons=True)
    batch.columns = {f: table.header[i] for f, i in cols.columns.items()}
    used = set(cols.columns.values())
    extra = [(i, h) for i, h in enumerate(table.header) if i not in used and h]
    created_default = now or datetime.now(UTC)
    if _read_fast(batch, table, cols, extra, currency, created_default):
        return batch
    keys = _RowKeys()
    for n, cells in table.rows:
        if not any(c.strip() for c in cells):
            continue  # an empty line, or only delimiters: skipped, as spreadsheets skip empty rows
        batch.read += 1
        row = _Row(batch, table, cols, n, cells)
        if not row.shape_ok():
            continue
        title, stage, pipe = row.text("title"), row.text("stage"), row.text("pipeline")
        for name, value in (("title", title), ("stage", stage), ("pipeline", pipe)):
            if value is None:
                i = cols.columns.get(name)
                row.bad(table.header[i] if i is not None else name, "", f"empty {name}; every deal needs one")
        amount = row.parsed("amount", _amount)
        created = row.parsed("created", parse_datetime)
        closed = row.parsed("closed", parse_datetime)
        cur = (row.text("currency") or currency).upper()
        if len(cur) != 3 or not cur.isalpha():
            row.bad(
                batch.column("currency"), row.text("currency") or cur, "not a 3-letter currency code such as RUB or USD"
            )
        if not row.ok:
            continue
        if created is None:
            batch.notes[NO_CREATED] = batch.notes.get(NO_CREATED, 0) + 1
        ext = row.text("external_id") or keys.next(cells)
        custom = {h: cells[i].strip() for i, h in extra if i < len(cells) and cells[i].strip()}
        batch.deals.append(
            DealRecord(
                ref=row.ref,
                external_id=ext,
                title=title or "",
                pipeline=pipe or "",
                stage=stage or "",
                created_at=created or created_default,
                amount=amount,
                currency=cur,
                owner=row.text("owner"),
                closed_at=closed,
                loss_reason=row.text("loss_reason"),
                source=row.text("source"),
                segment=row.text("segment"),
                custom=custom,
            )
        )
    return batch


NO_CREATED = "deals without a creation date: entered at the import time"


@columnar.big_load()  # ordinary pages for fresh memory, no cycle collections while the file is read
def _read_fast(
    batch: ImportBatch,
    table: Table,
    cols: Mapping,
    extra: list[tuple[int, str]],
    currency: str,
    created_default: datetime,
) -> bool:
    """Fill ``batch`` column-wise when the file is big and clean; False leaves it to the row reader."""
    columns = columnar.read_columns(table)
    if columns is None:
        return False
    n = len(columns[0]) if columns else 0
    values = {f: columnar.text(columns, cols, f, n) for f in ("title", "stage", "pipeline")}
    if any(v.null_count for v in values.values()):
        return False

    def parsed(field: str, parse: Callable[[pa.Array], Any]) -> Any:
        return parse(columns[cols.columns[field]]) if field in cols.columns else None

    with ThreadPoolExecutor(columnar.THREADS) as pool:  # Arrow's kernels let go of the GIL: a column per core
        parts = [
            pool.submit(columnar.custom_json, columns, extra, n),
            pool.submit(parsed, "amount", columnar.amounts),
            pool.submit(parsed, "created", columnar.times),
            pool.submit(parsed, "closed", columnar.times),
        ]
        try:
            custom, amount, created, closed = (part.result() for part in parts)
        except columnar.Doubt:
            return False
    if created is None:
        created = np.full(n, -1, np.int64)
    written = columnar.text(columns, cols, "currency", n)
    codes = {c: (c or currency).upper() for c in written.unique().to_pylist()}
    if any(len(c) != 3 or not c.isalpha() for c in codes.values()):
        return False
    currencies = pc.fill_null(pc.utf8_upper(written), currency.upper())
    missing = int((created == -1).sum())
    if missing:
        created = np.where(created == -1, to_micros(created_default), created)
        batch.notes[NO_CREATED] = missing
    ext: pa.Array | list[str] = columnar.text(columns, cols, "external_id", n)
    if ext.null_count:
        keys = _RowKeys()
        raw = columns.raw  # the row reader keys rows by their cells as written, untrimmed
        rows = zip(*(raw.column(i).to_pylist() for i in range(len(table.header))), strict=True)
        ext = [e or keys.next(list(cells)) for e, cells in zip(ext.to_pylist(), rows, strict=True)]
    batch.read = n
    batch.deals.extend(
        {
            "file": pa.repeat(batch.file, n),  # Arrow: lists of a million only if a problem needs a row's place
            "row": pa.array(np.arange(2, n + 2)),
            "external_id": ext,
            **values,
            "created": pa.array(created),
            "amount": amount if amount is not None else pa.nulls(n, pa.decimal128(24, 4)),
            "currency": currencies,
            "owner": columnar.text(columns, cols, "owner", n),
            "closed": pa.nulls(n, pa.int64()) if closed is None else pa.array(closed, mask=closed == -1),
            "loss_reason": columnar.text(columns, cols, "loss_reason", n),
            "source": columnar.text(columns, cols, "source", n),
            "segment": columnar.text(columns, cols, "segment", n),
            "custom": custom,
        }
    )
    return True


class _RowKeys:
    """Stable ids for a file without an id column: a digest of the row, and the k-th identical row gets its own,
    so the same file gives the same deals on every import."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def next(self, cells: list[str]) -> str:
        digest = hashlib.sha1("\x1f".join(cells).encode("utf-8", "surrogateescape")).hexdigest()[:20]
        k = self.seen.get(digest, 0)
        self.seen[digest] = k + 1
        return f"row:{digest}" + (f"#{k}" if k else "")


def read_moves(
    path: str | Path,
    *,
    pipeline: str | None = None,
    columns: dict[str, str] | None = None,
    mapping: str | Path | None = None,
    source: str = "file",
) -> ImportBatch:
    """Read a stage history (one row per move: deal, stage, time, [pipeline, author, reason, comment])."""
    table, cols = table_and_mapping(path, mapping, MOVE_FIELDS)
    for name, ref in (columns or {}).items():
        if ref:
            cols.columns[name] = resolve_column(ref, table.header, name)
    if pipeline:
        cols.constants["pipeline"] = pipeline
    _require(cols, table, ("deal", "stage", "at", "pipeline"), "deal id, stage, time and pipeline (--pipeline P)")
    batch = ImportBatch(source=source, file=table.path.name, header=table.header, history=True, enforce_reasons=True)
    batch.columns = {f: table.header[i] for f, i in cols.columns.items()}
    for n, cells in table.rows:
        if not any(c.strip() for c in cells):
            continue  # an empty line, or only delimiters: skipped, as spreadsheets skip empty rows
        batch.read += 1
        row = _Row(batch, table, cols, n, cells)
        if not row.shape_ok():
            continue
        deal, stage, pipe = row.text("deal"), row.text("stage"), row.text("pipeline")
        at = row.parsed("at", parse_datetime)
        for name, value in (("deal", deal), ("stage", stage), ("pipeline", pipe), ("at", at)):
            if value is None and row.ok:
                i = cols.columns.get(name)
                row.bad(table.header[i] if i is not None else name, "", f"empty {name}; every move needs one")
        if not row.ok or at is None:
            continue
        batch.moves.append(
            MoveRecord(
                ref=row.ref,
                deal=deal or "",
                stage=stage or "",
                at=at,
                pipeline=pipe,
                by=row.text("by"),
                reason=row.text("reason"),
                comment=row.text("comment"),
            )
        )
    return batch
