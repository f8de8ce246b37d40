"""What every importer produces: an :class:`ImportBatch` of deals and moves with where each came from.

Readers (CSV/XLSX files, amoCRM, Bitrix24) only parse and collect problems; :func:`voronka.io.apply.apply_batch`
decides atomically what lands.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from voronka.domain.pipeline import ProcessKind, StageKind
from voronka.io.problems import Problem
from voronka.store.types import from_micros, to_micros


@dataclass(frozen=True, slots=True)
class RowRef:
    file: str
    row: int | None


@dataclass(slots=True)
class DealRecord:
    """A deal as a file or a CRM states it now (a snapshot). Upserted by (batch source, external id)."""

    ref: RowRef
    external_id: str
    title: str
    pipeline: str
    stage: str
    created_at: datetime
    amount: Decimal | None = None
    currency: str = "RUB"
    owner: str | None = None
    closed_at: datetime | None = None
    loss_reason: str | None = None
    source: str | None = None
    segment: str | None = None
    custom: dict[str, str] = field(default_factory=dict)


class _Lists(dict[str, list[Any]]):
    """Column name -> Python list; a column held only as Arrow becomes a list when first asked for."""

    def __init__(self, arrow: dict[str, pa.Array]) -> None:
        super().__init__()
        self.arrow = arrow

    def __missing__(self, name: str) -> list[Any]:
        values = self.arrow[name].to_pylist()
        self[name] = values
        return values


class DealColumns:
    """The deals of a batch, kept as columns so that a million rows cost lists, not objects.

    Readers that go row by row (CRM APIs) ``append`` :class:`DealRecord` objects; the fast file reader
    ``extend``-s whole columns, some of them as Arrow arrays (``arrow``): they become Python lists only when some
    step asks for them in ``cols``, and the bulk insert of new deals reads them as they are. Iterating yields
    :class:`DealRecord` objects. Times are integer microseconds since the epoch in the columns.
    """

    NAMES = (
        "file",
        "row",
        "external_id",
        "title",
        "pipeline",
        "stage",
        "created",
        "amount",
        "currency",
        "owner",
        "closed",
        "loss_reason",
        "source",
        "segment",
        "custom",
    )

    def __init__(self) -> None:
        self.arrow: dict[str, pa.Array] = {}
        self.cols: dict[str, list[Any]] = _Lists(self.arrow)
        self.cols.update({n: [] for n in self.NAMES})
        self._distinct: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}  # of Arrow columns, which do not change
        self.n = 0

    def _lists_only(self) -> None:
        for name in list(self.arrow):
            _ = self.cols[name]
        self.arrow.clear()
        self._distinct.clear()

    def append(self, d: DealRecord) -> None:
        self._lists_only()
        values = (
            d.ref.file,
            d.ref.row,
            d.external_id,
            d.title,
            d.pipeline,
            d.stage,
            to_micros(d.created_at),
            d.amount,
            d.currency,
            d.owner,
            None if d.closed_at is None else to_micros(d.closed_at),
            d.loss_reason,
            d.source,
            d.segment,
            d.custom or None,
        )
        for name, value in zip(self.NAMES, values, strict=True):
            self.cols[name].append(value)
        self.n += 1

    def extend(self, columns: dict[str, list[Any] | pa.Array]) -> None:
        """Add whole columns; Arrow arrays stay Arrow when the batch was empty (the fast reader's one call)."""
        n = len(next(iter(columns.values())))
        if self.n == 0:
            for name in self.NAMES:
                values = columns.get(name, [None] * n)
                if isinstance(values, pa.Array):
                    self.arrow[name] = values
                    del self.cols[name]
                else:
                    self.cols[name] = list(values)
            self.n = n
            return
        self._lists_only()
        for name in self.NAMES:
            values = columns.get(name, [None] * n)
            self.cols[name].extend(values.to_pylist() if isinstance(values, pa.Array) else values)
        self.n += n

    def __len__(self) -> int:
        return self.n

    def distinct(self, *names: str) -> list[tuple[Any, ...]]:
        """The distinct combinations of the named columns' values, in order of first appearance; computed by
        Arrow when the columns are held as Arrow (no Python object per row)."""
        if not (self.n and all(n in self.arrow for n in names)):
            return list(dict.fromkeys(zip(*(self.cols[n] for n in names), strict=True)))
        if names in self._distinct:
            return self._distinct[names]
        keys = [f"k{i}" for i in range(len(names))]
        table = pa.table({**{k: self.arrow[n] for k, n in zip(keys, names, strict=True)}, "at": np.arange(self.n)})
        found = table.group_by(keys, use_threads=False).aggregate([("at", "min")]).sort_by("at_min")
        self._distinct[names] = list(zip(*(found.column(k).to_pylist() for k in keys), strict=True))
        return self._distinct[names]

    def unique_ids(self) -> bool:
        """Whether no two deals share an external id."""
        ids = self.arrow.get("external_id")
        if ids is None:
            return len(set(self.cols["external_id"])) == self.n
        if not ids.null_count:
            try:  # ids that are numbers (CRMs' are): distinct numbers are distinct texts, and sorting is cheap
                numbers = np.sort(pc.cast(ids, pa.int64()).to_numpy())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
            else:
                if not (numbers[1:] == numbers[:-1]).any():
                    return True
        return len(pc.unique(ids)) == len(ids)

    def __getitem__(self, i: int) -> DealRecord:
        c = self.cols
        return DealRecord(
            ref=RowRef(c["file"][i], c["row"][i]),
            external_id=c["external_id"][i],
            title=c["title"][i],
            pipeline=c["pipeline"][i],
            stage=c["stage"][i],
            created_at=from_micros(c["created"][i]),
            amount=c["amount"][i],
            currency=c["currency"][i],
            owner=c["owner"][i],
            closed_at=None if c["closed"][i] is None else from_micros(c["closed"][i]),
            loss_reason=c["loss_reason"][i],
            source=c["source"][i],
            segment=c["segment"][i],
            custom=_custom(c["custom"][i]),
        )

    def __iter__(self) -> Iterator[DealRecord]:
        return (self[i] for i in range(len(self)))

    def ref(self, i: int) -> RowRef:
        return RowRef(self.cols["file"][i], self.cols["row"][i])


def _custom(value: dict[str, str] | str | None) -> dict[str, str]:
    """Custom fields are a dict, or JSON text already encoded by the columnar reader."""
    if isinstance(value, str):
        return dict(json.loads(value))
    return value or {}


@dataclass(frozen=True, slots=True)
class MoveRecord:
    """One entry of a deal's history: the deal (by external id) entered ``stage`` at ``at``."""

    ref: RowRef
    deal: str
    stage: str
    at: datetime
    pipeline: str | None = None
    by: str | None = None
    reason: str | None = None
    comment: str | None = None


@dataclass(slots=True)
class PipelineSpec:
    """A pipeline's structure as the source knows it (CRM APIs do; files usually do not)."""

    name: str
    open: list[str]
    won: str
    lost: list[str]
    reasons: list[str] = field(default_factory=list)
    process: ProcessKind = ProcessKind.CUSTOM


@dataclass
class ImportBatch:
    """Everything read from one source, before anything is written.

    ``source`` keys the upsert: the same external id from another source is another deal. ``history`` says
    whether the moves are the deals' real history (a move log, a CRM's events) or only their current stage.
    """

    source: str
    file: str
    read: int = 0
    pipelines: list[PipelineSpec] = field(default_factory=list)
    deals: DealColumns = field(default_factory=DealColumns)
    moves: list[MoveRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    bad_rows: dict[int, list[str]] = field(default_factory=dict)
    header: list[str] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)  # field -> the file's header for it, for messages
    # Files are data a person prepared: a pipeline's rule that lost needs a reason holds. A CRM's own history is
    # kept as it happened, whatever the rule says now.
    enforce_reasons: bool = False
    notes: dict[str, int] = field(default_factory=dict)  # things done that the user should know, with counts
    history: bool = False

    def column(self, name: str) -> str:
        return self.columns.get(name, name)

    def problem(
        self, ref: RowRef, column: str | None, value: str | None, reason: str, cells: list[str] | None = None
    ) -> None:
        self.problems.append(Problem(ref.file, ref.row, column, value, reason))
        if ref.row is not None and cells is not None:
            self.bad_rows[ref.row] = cells


_WON = re.compile(r"^(успешно реализовано|сделка успешна|успешн.*|выиграна|won|closed won|win|оплачено|продажа)$", re.I)
_LOST = re.compile(
    r"^(закрыто и не реализовано|сделка провалена|провален.*|проиграна|отказ|lost|closed lost|lose|неуспешн.*)$",
    re.I,
)


def guess_kind(stage: str) -> StageKind:
    """Won and lost stages by the names CRMs give them (amoCRM, Bitrix24, Salesforce, HubSpot, Pipedrive)."""
    name = stage.strip()
    if _WON.match(name):
        return StageKind.WON
    if _LOST.match(name):
        return StageKind.LOST
    return StageKind.OPEN
