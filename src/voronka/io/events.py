"""Event logs (entity, time, event, properties) and marketing costs per channel and period.

Both land in one transaction and are idempotent: an event is keyed by a digest of its content, a cost by
(channel, campaign, period).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from voronka.io.apply import ImportSummary, landing
from voronka.io.batch import ImportBatch, RowRef
from voronka.io.deals import _require, _Row, table_and_mapping
from voronka.io.mapping import Mapping, resolve_column
from voronka.io.problems import ImportRefusedError
from voronka.io.values import parse_datetime, parse_decimal
from voronka.store.schema import costs, events
from voronka.store.workspace import WorkspaceStore

EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "entity": (
        "entity",
        "user_id",
        "user id",
        "user",
        "visitor",
        "visitor_id",
        "client_id",
        "distinct_id",
        "session",
        "user_session",
        "lead",
        "lead_id",
        "mql_id",
        "id клиента",
        "посетитель",
    ),
    "at": ("time", "timestamp", "event_time", "event time", "at", "date", "datetime", "время", "дата"),
    "event": ("event", "event_type", "event type", "event_name", "name", "action", "событие"),
}
COST_FIELDS: dict[str, tuple[str, ...]] = {
    "channel": ("channel", "source", "utm_source", "канал", "источник"),
    "campaign": ("campaign", "utm_campaign", "кампания"),
    "date": ("date", "day", "дата", "день"),
    "month": ("month", "месяц"),
    "start": ("start", "from", "period start", "начало", "с"),
    "end": ("end", "to", "period end", "конец", "по"),
    "amount": ("amount", "cost", "spend", "spent", "расход", "расходы", "затраты", "стоимость", "сумма"),
    "currency": ("currency", "валюта"),
}


@dataclass(frozen=True, slots=True)
class _Event:
    ref: RowRef
    entity: str
    at: datetime
    event: str
    properties: dict[str, str]


def _insert_ignoring_duplicates(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT … ON CONFLICT DO NOTHING, in the dialect at hand."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(table).on_conflict_do_nothing(), rows)


def _columns(mapping: Mapping, header: list[str], given: dict[str, str | None]) -> None:
    for name, ref in given.items():
        if ref:
            mapping.columns[name] = resolve_column(ref, header, name)


def read_events(
    path: str | Path, *, columns: dict[str, str | None] | None = None, source: str = ""
) -> tuple[ImportBatch, list[_Event]]:
    """Read an event log; columns other than entity, time and event become the event's properties."""
    table, cols = table_and_mapping(path, None, EVENT_FIELDS)
    _columns(cols, table.header, columns or {})
    _require(
        cols,
        table,
        ("entity", "at", "event"),
        "the entity, time and event columns (--entity, --time, --event)",
    )
    batch = ImportBatch(source=source, file=table.path.name, header=table.header)
    batch.columns = {f: table.header[i] for f, i in cols.columns.items()}
    props = [(i, h) for i, h in enumerate(table.header) if i not in cols.columns.values()]
    out: list[_Event] = []
    for n, cells in table.rows:
        if not any(c.strip() for c in cells):
            continue
        batch.read += 1
        row = _Row(batch, table, cols, n, cells)
        if not row.shape_ok():
            continue
        at = row.parsed("at", parse_datetime)
        entity, event = row.text("entity"), row.text("event")
        for name, value in (("entity", entity), ("event", event)):
            if value is None:
                row.bad(batch.column(name), "", f"empty {name}")
        if row.ok and at is not None and entity and event:
            out.append(_Event(row.ref, entity, at, event, {h: cells[i] for i, h in props if cells[i] != ""}))
    return batch, out


def _digests(rows: list[_Event]) -> list[str]:
    """Content digests; the k-th identical copy within a file gets its own, so real repeats are all kept and a
    re-import of the same file still adds nothing."""
    seen: dict[str, int] = {}
    out = []
    for e in rows:
        text = json.dumps([e.entity, e.at.isoformat(), e.event, e.properties], ensure_ascii=False, sort_keys=True)
        k = seen.get(text, 0)
        seen[text] = k + 1
        out.append(hashlib.sha1(f"{text}#{k}".encode()).hexdigest())
    return out


def import_events(
    store: WorkspaceStore,
    batch: ImportBatch,
    rows: list[_Event],
    *,
    skip_bad_rows: bool = False,
    dry_run: bool = False,
) -> ImportSummary:
    """Store events; the same event (same entity, time, name and properties) is never stored twice."""
    if batch.problems and not skip_bad_rows:
        raise ImportRefusedError(batch.problems)
    summary = ImportSummary(read=batch.read, dry_run=dry_run, problems=list(batch.problems))
    summary.rejected = len({p.row for p in batch.problems})
    source = batch.source
    with landing(store, summary) as conn:
        count = select(func.count()).select_from(events).where(events.c.source == source)
        before = conn.scalar(count) or 0
        payload = [
            {
                "entity": e.entity,
                "at": e.at,
                "event": e.event,
                "properties": e.properties or None,
                "source": source,
                "digest": d,
            }
            for e, d in zip(rows, _digests(rows), strict=True)
        ]
        for start in range(0, len(payload), 20_000):
            _insert_ignoring_duplicates(conn, events, payload[start : start + 20_000])
        summary.inserted = (conn.scalar(count) or 0) - before
        summary.unchanged = len(rows) - summary.inserted
    return summary


def _period(row: _Row) -> tuple[date, date] | None:
    """[start, end) of a cost row: a day, a month (2026-10 or 01.10.2026), or an inclusive start–end range."""
    if row.text("date") is not None:
        day = row.parsed("date", parse_datetime)
        return None if day is None else (day.date(), day.date() + timedelta(days=1))
    if row.text("month") is not None:
        raw = row.text("month") or ""
        try:
            first = datetime.strptime(raw.strip()[:7], "%Y-%m").date() if "-" in raw else parse_datetime(raw).date()
        except ValueError:
            row.bad(row.batch.column("month"), raw, "not a month: write 2026-10 or 01.10.2026")
            return None
        first = first.replace(day=1)
        return first, (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    start, end = row.parsed("start", parse_datetime), row.parsed("end", parse_datetime)
    if start is None or end is None:
        if row.ok:
            row.bad(None, None, "no period: give a date, a month, or start and end columns")
        return None
    if end < start:
        row.bad(row.batch.column("end"), end.date().isoformat(), "the period ends before it starts")
        return None
    return start.date(), end.date() + timedelta(days=1)


def import_costs(
    store: WorkspaceStore,
    path: str | Path,
    *,
    columns: dict[str, str | None] | None = None,
    currency: str = "RUB",
    skip_bad_rows: bool = False,
    dry_run: bool = False,
) -> tuple[ImportBatch, ImportSummary]:
    """Import marketing costs per channel and period; a re-import updates changed amounts and nothing else."""
    table, cols = table_and_mapping(path, None, COST_FIELDS)
    _columns(cols, table.header, columns or {})
    _require(cols, table, ("channel", "amount"), "the channel and the amount spent")
    batch = ImportBatch(source="costs", file=table.path.name, header=table.header)
    batch.columns = {f: table.header[i] for f, i in cols.columns.items()}
    records = []
    for n, cells in table.rows:
        if not any(c.strip() for c in cells):
            continue
        batch.read += 1
        row = _Row(batch, table, cols, n, cells)
        if not row.shape_ok():
            continue
        period = _period(row)
        amount = row.parsed("amount", parse_decimal)
        channel = row.text("channel")
        if channel is None:
            row.bad(batch.column("channel"), "", "empty channel")
        if row.ok and period and amount is not None and channel:
            records.append(
                {
                    "channel": channel,
                    "campaign": row.text("campaign") or "",
                    "start": period[0],
                    "end": period[1],
                    "amount": amount,
                    "currency": (row.text("currency") or currency).upper(),
                }
            )
    if batch.problems and not skip_bad_rows:
        raise ImportRefusedError(batch.problems)
    summary = ImportSummary(read=batch.read, dry_run=dry_run, problems=list(batch.problems))
    summary.rejected = len({p.row for p in batch.problems})
    with landing(store, summary) as conn:
        for r in records:
            key = (
                costs.c.channel == r["channel"],
                costs.c.campaign == r["campaign"],
                costs.c.start == r["start"],
                costs.c.end == r["end"],
            )
            old = conn.execute(select(costs.c.id, costs.c.amount, costs.c.currency).where(*key)).one_or_none()
            if old is None:
                conn.execute(costs.insert().values(**r))
                summary.inserted += 1
            elif (old.amount, old.currency) != (r["amount"], r["currency"]):
                conn.execute(
                    update(costs).where(costs.c.id == old.id).values(amount=r["amount"], currency=r["currency"])
                )
                summary.updated += 1
            else:
                summary.unchanged += 1
    return batch, summary
