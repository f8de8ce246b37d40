"""The amoCRM / Kommo deals export (Сделки → … → Экспорт, CSV or XLSX) → deals in their current stage.

amoCRM writes Russian headers ("ID", "Название сделки", "Бюджет", "Ответственный", "Дата создания",
"Дата закрытия", "Этап сделки", "Воронка", "Теги", "Причина отказа", …), repeats some of them (several
"Телефон", "Email" or "Примечание" columns), saves CSV in Windows-1251 or UTF-8 with ``;``, writes times in
the account's time zone and budgets in whole rubles. An export has no history: every deal comes in its
current stage only, so the import is a snapshot (``history=False``) and the deals are marked as such in the
workspace.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from voronka.errors import InputError
from voronka.io.batch import DealRecord, ImportBatch
from voronka.io.deals import _Row, table_and_mapping
from voronka.io.mapping import DEAL_FIELDS, Mapping
from voronka.io.tables import Table
from voronka.io.values import parse_datetime, parse_decimal

SOURCE = "amocrm"
CURRENT_STATE_ONLY = (
    "deal(s) in their current stage only — current state only: an export has each deal's stage now, not its "
    "path through the stages, so their stage conversions and times in stage are not measured "
    "(`voronka import amocrm --api` brings the full history)"
)
# Headers of amoCRM and Kommo exports the generic aliases do not cover (the budget carries its currency sign).
_AMO_ALIASES: dict[str, tuple[str, ...]] = {
    "title": ("lead name", "lead title"),
    "pipeline": ("название воронки", "lead pipeline"),
    "stage": ("этап воронки", "lead stage", "lead status"),
    "amount": ("бюджет ₽", "бюджет, ₽", "бюджет руб", "бюджет, руб", "sale", "lead sale"),
    "owner": ("ответственный пользователь", "responsible user", "lead owner"),
    "closed": ("date closed", "closing date"),
    "loss_reason": ("reason for loss",),
}
AMO_FIELDS: dict[str, tuple[str, ...]] = {f: (*a, *_AMO_ALIASES.get(f, ())) for f, a in DEAL_FIELDS.items()}

_MARKS = re.compile(r"\s*(₽|руб\.?|р\.|rub)\s*$", re.IGNORECASE)
_SPACES = re.compile(r"[\s\u00a0\u202f']")
_GROUPED = re.compile(r"\d{1,3}([,.])\d{3}(?:\1\d{3})*")
_FRACTION = re.compile(r"\d+[,.]\d{1,2}")
_HAS_ZONE = re.compile(r"(Z|[+-]\d{2}:?\d{2}|\bUTC)$")
_NOT_CLOSED = {"-", "—", "не закрыта", "не закрыто", "нет", "not closed"}


def parse_budget(text: str) -> Decimal:
    """A budget as amoCRM writes it: whole rubles, maybe grouped (``150 000``, ``150,000``, ``1.500``).

    A comma or dot followed by exactly three digits groups thousands (amoCRM has no kopecks in budgets); one
    or two digits after it are a fraction, as spreadsheets write ``1500,50``.

    >>> parse_budget("150,000 ₽"), parse_budget("1500,5")
    (Decimal('150000'), Decimal('1500.5'))
    """
    body = _SPACES.sub("", _MARKS.sub("", text.strip()))
    if body.startswith("-"):
        raise ValueError("a negative budget; budgets are zero or more")
    if body.isdigit():
        return Decimal(body)
    if _GROUPED.fullmatch(body):
        return Decimal(re.sub(r"[,.]", "", body))
    if _FRACTION.fullmatch(body):
        return Decimal(body.replace(",", "."))
    if "," in body and "." in body:
        return parse_decimal(body)
    raise ValueError("not a budget: amoCRM writes whole rubles, e.g. 150000 or 150 000")


def _zone(tz: str | None) -> tzinfo | None:
    if not tz:
        return None
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"Unknown time zone {tz!r}: give the account's zone as in amoCRM's settings, e.g. Europe/Moscow."
        ) from None


def _moment(raw: str, zone: tzinfo | None) -> datetime:
    """A time of the export: in the account's zone when ``zone`` is given and the value names none."""
    at = parse_datetime(raw)
    if zone is not None and not _HAS_ZONE.search(raw.strip()):
        at = at.replace(tzinfo=zone).astimezone(UTC)
    return at


def _closed(raw: str, zone: tzinfo | None) -> datetime | None:
    return None if raw.strip().casefold() in _NOT_CLOSED else _moment(raw, zone)


def _require(cols: Mapping, table: Table) -> None:
    missing = [f for f in ("stage", "pipeline") if f not in cols.columns and f not in cols.constants]
    if "title" not in cols.columns and "external_id" not in cols.columns:
        missing.insert(0, "title")
    if missing:
        shown = ", ".join(repr(h) for h in table.header[:30])
        raise InputError(
            f"{table.path.name}: no column for {', '.join(missing)}; an amoCRM export has «Название сделки», "
            f"«Этап сделки» and «Воронка». Columns are: {shown}. Export the deals again with these columns, "
            f"or pass --pipeline P when the file has no «Воронка» column."
        )


def _extra_columns(table: Table, cols: Mapping) -> dict[str, list[int]]:
    """Columns no field uses, by header; a repeated header (several «Телефон») keeps all its columns."""
    used = set(cols.columns.values())
    extra: dict[str, list[int]] = defaultdict(list)
    for i, h in enumerate(table.header):
        if i not in used and h:
            extra[h].append(i)
    return dict(extra)


def _custom(cells: list[str], extra: dict[str, list[int]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for header, idx in extra.items():
        values = [cells[i].strip() for i in idx if i < len(cells) and cells[i].strip()]
        if values:
            out[header] = "; ".join(dict.fromkeys(values))
    return out


def read_amocrm_export(
    path: str | Path,
    *,
    pipeline: str | None = None,
    now: datetime | None = None,
    tz: str | None = None,
    currency: str = "RUB",
) -> ImportBatch:
    """Read an amoCRM / Kommo deals export into an :class:`ImportBatch` of deals in their current stage.

    Parameters
    ----------
    path
        The export, CSV (Windows-1251 or UTF-8, ``;``) or XLSX.
    pipeline
        The pipeline when the file has no «Воронка» column.
    now
        The creation time of deals without «Дата создания» (default: now).
    tz
        The account's time zone (e.g. ``Europe/Moscow``): amoCRM writes local times; without it they are UTC.
    currency
        The currency of the budgets.

    Returns
    -------
    ImportBatch
        ``source="amocrm"``, ``history=False``; the deals' external ids are the amoCRM lead ids.
    """
    zone = _zone(tz)
    table, cols = table_and_mapping(path, None, AMO_FIELDS)
    if pipeline:
        cols.constants["pipeline"] = pipeline
    _require(cols, table)
    batch = ImportBatch(source=SOURCE, file=table.path.name, header=table.header, history=False)
    batch.columns = {f: table.header[i] for f, i in cols.columns.items()}
    extra = _extra_columns(table, cols)
    default_created = now or datetime.now(UTC)
    keys: dict[str, int] = {}
    for n, cells in table.rows:
        batch.read += 1
        row = _Row(batch, table, cols, n, cells)
        if row.shape_ok():
            record = _record(row, cells, extra, zone, currency, default_created, keys)
            if record is not None:
                batch.deals.append(record)
    if batch.deals:
        batch.notes[CURRENT_STATE_ONLY] = len(batch.deals)
    return batch


def _row_key(cells: list[str], seen: dict[str, int]) -> str:
    """A stable id for a row of a file without «ID»: its digest, and the k-th identical row gets its own."""
    digest = hashlib.sha1("\x1f".join(cells).encode("utf-8", "surrogateescape")).hexdigest()[:20]
    k = seen.get(digest, 0)
    seen[digest] = k + 1
    return f"row:{digest}" + (f"#{k}" if k else "")


def _record(
    row: _Row,
    cells: list[str],
    extra: dict[str, list[int]],
    zone: tzinfo | None,
    currency: str,
    default_created: datetime,
    keys: dict[str, int],
) -> DealRecord | None:
    ext = row.text("external_id")
    title = row.text("title") or (f"Сделка #{ext}" if ext else None)
    stage, pipe = row.text("stage"), row.text("pipeline")
    for name, value in (("title", title), ("stage", stage), ("pipeline", pipe)):
        if value is None:
            row.bad(row.batch.column(name), "", f"empty {name}; every deal of an amoCRM export has one")
    amount = row.parsed("amount", parse_budget)
    created = row.parsed("created", lambda raw: _moment(raw, zone))
    closed = row.parsed("closed", lambda raw: _closed(raw, zone))
    cur = (row.text("currency") or currency).upper()
    if len(cur) != 3 or not cur.isalpha():
        row.bad(row.batch.column("currency"), cur, "not a 3-letter currency code such as RUB or USD")
    if not row.ok:
        return None
    return DealRecord(
        ref=row.ref,
        external_id=ext or _row_key(cells, keys),
        title=title or "",
        pipeline=pipe or "",
        stage=stage or "",
        created_at=created or default_created,
        amount=amount,
        currency=cur,
        owner=row.text("owner"),
        closed_at=closed,
        loss_reason=row.text("loss_reason"),
        source=row.text("source"),
        segment=row.text("segment"),
        custom=_custom(cells, extra),
    )
