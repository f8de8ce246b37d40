"""Read the deals export of Bitrix24 (CRM → Deals → ⚙ → Export to CSV / Excel) into a snapshot batch.

The export is CSV in Windows-1251 or UTF-8, or — in older versions — an HTML table saved as ``.xls``; both are
opened by :func:`voronka.io.tables.open_table`. Columns are the list's columns under their Russian titles
("ID", "Название сделки", "Стадия сделки", "Направление"/"Воронка", "Сумма", "Валюта", "Ответственный",
"Дата создания", "Дата закрытия"/"Предполагаемая дата закрытия", "Источник", …) and are found by the aliases of
:data:`voronka.io.mapping.DEAL_FIELDS` (and «Предполагаемая дата закрытия» for the close date). An empty
pipeline is the default one, called "Общая" in Russian portals. Dates are written without a zone, in the
portal's time; ``timezone`` says which (UTC when omitted).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from voronka.domain.pipeline import Pipeline, StageKind
from voronka.errors import InputError
from voronka.io.batch import DealRecord, ImportBatch, PipelineSpec, RowRef, guess_kind
from voronka.io.mapping import DEAL_FIELDS, Mapping, detect
from voronka.io.tables import Table, decode_problem, open_table
from voronka.io.values import parse_datetime, parse_decimal

SOURCE = "bitrix24"
DEFAULT_PIPELINE = "Общая"
DEFAULT_WON = "Сделка успешна"
DEFAULT_LOST = "Сделка провалена"
# The stages a new Bitrix24 deal pipeline has, in order (names of the Russian portal).
STANDARD_OPEN = ("новая", "подготовка документов", "счет на предоплату", "в работе", "финальный счет")
STANDARD_LOST = ("сделка провалена", "анализ причины провала")
FIELDS = {**DEAL_FIELDS, "closed": (*DEAL_FIELDS["closed"], "предполагаемая дата закрытия")}
CURRENCY_NAMES = {
    "российский рубль": "RUB",
    "рубль": "RUB",
    "руб": "RUB",
    "руб.": "RUB",
    "₽": "RUB",
    "доллар сша": "USD",
    "доллар": "USD",
    "$": "USD",
    "евро": "EUR",
    "€": "EUR",
    "тенге": "KZT",
    "белорусский рубль": "BYN",
    "гривна": "UAH",
    "юань": "CNY",
    "узбекский сум": "UZS",
}
_ZONED = re.compile(r"(Z|UTC|[+-]\d{2}:?\d{2})$")


def read_bitrix24_export(
    path: str | Path, *, pipeline: str | None = None, now: datetime | None = None, timezone: str | None = None
) -> ImportBatch:
    """Read a Bitrix24 deals export: one row per deal in its current stage (a snapshot, no history).

    ``pipeline`` names the default pipeline (rows with an empty "Направление", or a file without that column);
    it is "Общая" when omitted.
    """
    table = open_table(path)
    cols = detect(table.header, FIELDS)
    _require(table, cols)
    batch = ImportBatch(source=SOURCE, file=table.path.name, header=table.header)
    batch.columns = {f: table.header[i] for f, i in cols.columns.items()}
    reader = _RowReader(batch, table, cols, pipeline or DEFAULT_PIPELINE, _zone(timezone), now or datetime.now(UTC))
    for n, cells in table.rows:
        batch.read += 1
        deal = reader.deal(n, cells)
        if deal is not None:
            batch.deals.append(deal)
    return batch


def _require(table: Table, cols: Mapping) -> None:
    missing = [f for f in ("external_id", "stage") if f not in cols.columns]
    if missing:
        shown = ", ".join(repr(h) for h in table.header[:30])
        raise InputError(
            f"{table.path.name}: no {' and no '.join(_TITLES[f] for f in missing)} column, so this is not a "
            f"Bitrix24 deals export as expected (columns: {shown}). Bitrix24 exports the columns shown in the "
            f"deal list: add them there (⚙ → columns), export again, or import the file with "
            f"`voronka import deals --mapping`."
        )


_TITLES = {"external_id": "'ID'", "stage": "'Стадия сделки'"}


def _zone(name: str | None) -> tzinfo:
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"Unknown time zone {name!r}: give the portal's zone as an IANA name, e.g. Europe/Moscow."
        ) from None


class _RowReader:
    """Turns one export row into a DealRecord, recording a problem for each bad value."""

    def __init__(
        self, batch: ImportBatch, table: Table, cols: Mapping, pipeline: str, zone: tzinfo, now: datetime
    ) -> None:
        self.batch, self.table, self.cols, self.pipeline, self.zone, self.now = batch, table, cols, pipeline, zone, now

    def deal(self, n: int, cells: list[str]) -> DealRecord | None:
        ref = RowRef(self.batch.file, n)
        bad = _Bad(self.batch, ref, cells)
        if not self._shape_ok(bad, cells):
            return None
        text = _Cells(cells, self.cols)
        ext, stage = text("external_id"), text("stage")
        if not ext:
            bad(self.table.header[self.cols.columns["external_id"]], "", "empty deal ID; every exported deal has one")
        if not stage:
            bad(self.table.header[self.cols.columns["stage"]], "", "empty stage; every deal is in a stage")
        amount = self._amount(bad, text("amount"))
        currency = self._currency(bad, text("currency"))
        created = self._when(bad, "created", text("created"))
        closed = self._when(bad, "closed", text("closed"))
        if bad.count or not ext or not stage:
            return None
        return DealRecord(
            ref=ref,
            external_id=ext,
            title=text("title") or f"Сделка #{ext}",
            pipeline=text("pipeline") or self.pipeline,
            stage=stage,
            created_at=created or self.now,
            amount=amount,
            currency=currency,
            owner=text("owner"),
            closed_at=closed,
            source=text("source"),
        )

    def _shape_ok(self, bad: _Bad, cells: list[str]) -> bool:
        width = len(self.table.header)
        if decode_problem(cells):
            bad(None, None, f"bytes that are not valid {self.table.encoding} text: save the export again as UTF-8")
        elif len(cells) < width:
            bad(None, ";".join(cells)[:60], f"{len(cells)} fields where the header has {width}: a truncated line?")
        return bad.count == 0

    def _column(self, name: str) -> str:
        return self.table.header[self.cols.columns[name]]

    def _amount(self, bad: _Bad, raw: str | None) -> Decimal | None:
        if raw is None:
            return None
        try:
            value = parse_decimal(raw)
        except ValueError as exc:
            bad(self._column("amount"), raw, str(exc))
            return None
        if value < 0:
            bad(self._column("amount"), raw, "a negative amount; amounts are zero or more")
        return value

    def _currency(self, bad: _Bad, raw: str | None) -> str:
        if raw is None:
            return "RUB"
        code = CURRENCY_NAMES.get(raw.strip().casefold(), raw.strip().upper())
        if len(code) != 3 or not code.isalpha():
            bad(self._column("currency"), raw, "not a currency code such as RUB or USD, nor a known currency name")
        return code

    def _when(self, bad: _Bad, name: str, raw: str | None) -> datetime | None:
        if raw is None:
            return None
        try:
            value = parse_datetime(raw)
        except ValueError as exc:
            bad(self._column(name), raw, str(exc))
            return None
        if _ZONED.search(raw.strip()):
            return value
        return value.replace(tzinfo=self.zone).astimezone(UTC)  # wall-clock time of the portal


class _Cells:
    def __init__(self, cells: list[str], cols: Mapping) -> None:
        self.cells, self.cols = cells, cols

    def __call__(self, name: str) -> str | None:
        i = self.cols.columns.get(name)
        value = self.cells[i].strip() if i is not None and i < len(self.cells) else ""
        return value or None


class _Bad:
    def __init__(self, batch: ImportBatch, ref: RowRef, cells: list[str]) -> None:
        self.batch, self.ref, self.cells, self.count = batch, ref, cells, 0

    def __call__(self, column: str | None, value: str | None, reason: str) -> None:
        self.count += 1
        self.batch.problem(self.ref, column, value, reason, self.cells)


# -- the structure of pipelines the export does not state --------------------------------------------------


def stage_kind(name: str) -> StageKind:
    """The kind of a stage by its name, knowing Bitrix24's standard stage names."""
    if _fold(name) in STANDARD_LOST:
        return StageKind.LOST
    return guess_kind(name)


def export_pipeline_specs(batch: ImportBatch, existing: Iterable[Pipeline] = ()) -> list[PipelineSpec]:
    """The structure of the export's pipelines, laid out as Bitrix24 lays out its directions.

    An export names stages but not their order or kind: a new pipeline gets the standard stages in their
    standard order, the others after them in the order they first appear, with Bitrix24's won and lost stages
    recognised. A pipeline in ``existing`` gets only its missing stages (never a second won stage). Used for
    ``--create-missing`` only: without it unknown pipelines and stages are reported, not guessed.
    """
    known = {p.name.casefold(): p for p in existing}
    stages: dict[str, list[str]] = {}
    for d in batch.deals:
        names = stages.setdefault(d.pipeline, [])
        if d.stage not in names:
            names.append(d.stage)
    specs = []
    for name, names in stages.items():
        pipe = known.get(name.casefold())
        spec = _spec(name, names) if pipe is None else _missing(pipe, names)
        if spec is not None:
            specs.append(spec)
    return specs


def _missing(pipe: Pipeline, names: list[str]) -> PipelineSpec | None:
    have = {s.name.casefold() for s in pipe.stages}
    missing = [n for n in names if n.casefold() not in have]
    if not missing:
        return None
    lost = [n for n in missing if stage_kind(n) is StageKind.LOST]
    return PipelineSpec(pipe.name, [n for n in missing if n not in lost], pipe.won_stage.name, lost)


def _spec(pipeline: str, names: list[str]) -> PipelineSpec:
    kinds = {n: stage_kind(n) for n in names}
    order = {name: i for i, name in enumerate(STANDARD_OPEN)}
    opens = sorted((n for n in names if kinds[n] is StageKind.OPEN), key=lambda n: order.get(_fold(n), len(order)))
    won = [n for n in names if kinds[n] is StageKind.WON]
    lost = [n for n in names if kinds[n] is StageKind.LOST]
    opens += won[1:]  # a pipeline has one won stage; other "won-looking" names stay open stages
    return PipelineSpec(pipeline, opens or ["Новая"], won[0] if won else DEFAULT_WON, lost or [DEFAULT_LOST])


def _fold(text: str) -> str:
    return text.strip().casefold().replace("ё", "е")
