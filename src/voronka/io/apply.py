"""Land an :class:`ImportBatch` in the workspace: whole or not at all, and idempotent.

- Deals are upserted by (batch source, external id): new ones inserted, changed ones updated (version + 1),
  the rest unchanged. Re-running the same import changes nothing.
- History is appended: a move already in the log (same deal, stage and time) is skipped; a new move must not be
  earlier than the deal's last logged move. Moves after won, lost without a reason (when optional) and repeated
  stages are kept as they happened.
- A snapshot (deals without history) gives a new deal its creation move and, when it is closed, the move to won
  or lost at the close date; a changed stage of an existing deal is appended as a move at the close date, or
  now.
- Unknown pipelines and stages are created with ``create_missing`` or reported; loss reasons a source uses are
  added to the pipeline's catalogue.
- Any problem refuses the whole import (nothing written) unless ``skip_bad_rows``; then the bad rows are left
  out and listed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update

from voronka.domain.pipeline import Pipeline, Stage, StageKind, reason_id_of
from voronka.domain.templates import DEFAULT_LOST, DEFAULT_WON
from voronka.errors import NotFoundError
from voronka.io.batch import DealRecord, ImportBatch, MoveRecord, PipelineSpec, RowRef, guess_kind
from voronka.io.columnar import big_load
from voronka.io.problems import ImportRefusedError, Problem
from voronka.io.snapshots import insert_snapshots
from voronka.store.bulk import BIG
from voronka.store.schema import deals, loss_reasons, pipelines, stage_moves, stages, users
from voronka.store.workspace import WorkspaceStore

_DEAL_FIELDS = ("title", "owner_id", "amount", "currency", "source", "segment", "custom")


@dataclass
class ImportSummary:
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    moves_added: int = 0
    created: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    dry_run: bool = False

    def line(self) -> str:
        return (
            f"read {self.read}, inserted {self.inserted}, updated {self.updated}, unchanged {self.unchanged}, "
            f"rejected {self.rejected}"
            + (f"; {self.moves_added} stage moves added" if self.moves_added else "")
            + (" — dry run: nothing was saved" if self.dry_run else "")
        )


class _DryRun(Exception):
    def __init__(self, summary: ImportSummary) -> None:
        self.summary = summary


# Every table an import writes: a bulk import checks their foreign keys once, before its commit.
WRITTEN = (pipelines, stages, loss_reasons, users, deals, stage_moves)


@contextmanager
def landing(store: WorkspaceStore, summary: ImportSummary, *, bulk: bool = False) -> Iterator[Connection]:
    """One transaction for an import: committed, or rolled back when it raises or is a dry run.

    Inside a caller's transaction a dry run writes into a savepoint that is rolled back, so the caller's own
    writes stay and the import's do not. A ``bulk`` import checks foreign keys once before its commit, not row
    by row (see :meth:`WorkspaceStore.transaction`).
    """
    outer = store._tx is not None  # noqa: SLF001 - whether the store is already in a transaction
    try:
        with store.transaction(bulk=WRITTEN if bulk else ()) as conn:
            if outer and summary.dry_run:
                savepoint = conn.begin_nested()
                try:
                    yield conn
                finally:
                    savepoint.rollback()
                    store._pipelines.clear()  # noqa: SLF001 - pipelines cached from the rolled-back writes
                return
            yield conn
            if summary.dry_run:
                raise _DryRun(summary)
    except _DryRun:
        pass


@big_load()  # ordinary pages for fresh memory, no cycle collections (see columnar)
def apply_batch(
    store: WorkspaceStore,
    batch: ImportBatch,
    *,
    create_missing: bool = False,
    skip_bad_rows: bool = False,
    dry_run: bool = False,
    now: datetime | None = None,
) -> ImportSummary:
    """Write ``batch`` in one transaction; see the module docstring for the rules."""
    now = now or datetime.now(UTC)
    _check_duplicates(batch)
    summary = ImportSummary(read=batch.read, dry_run=dry_run)
    with landing(store, summary, bulk=len(batch.deals) >= BIG) as conn:
        summary.created = _ensure_catalogue(store, conn, batch, create_missing)
        _refuse_or_skip(batch, skip_bad_rows)
        _write(store, conn, batch, summary, now)
        _refuse_or_skip(batch, skip_bad_rows)  # problems found while writing (history out of order)
        summary.problems = list(batch.problems)
        summary.rejected = len({(p.file, p.row) for p in batch.problems})
    return summary


def _refuse_or_skip(batch: ImportBatch, skip_bad_rows: bool) -> None:
    if batch.problems and not skip_bad_rows:
        raise ImportRefusedError(batch.problems)


def _bad(batch: ImportBatch) -> set[RowRef]:
    return {RowRef(p.file, p.row) for p in batch.problems}


def _check_duplicates(batch: ImportBatch) -> None:
    if batch.deals.unique_ids():
        return
    ids = batch.deals.cols["external_id"]
    seen: dict[str, int] = {}
    for i, ext in enumerate(ids):
        first = seen.setdefault(ext, i)
        if first != i:
            ref = batch.deals.ref(i)
            batch.problem(
                ref,
                batch.column("external_id"),
                ext,
                f"duplicate deal id: row {batch.deals.ref(first).row} has the same id; keep one of the two rows",
                batch.bad_rows.get(ref.row or -1),
            )


# -- catalogue: pipelines, stages, reasons -------------------------------------------------------------------


def _ensure_catalogue(store: WorkspaceStore, conn: Connection, batch: ImportBatch, create_missing: bool) -> list[str]:
    created: list[str] = []
    pipes = {p.name.casefold(): p for p in store.pipelines()}
    for spec in batch.pipelines:
        created += _ensure_spec(store, pipes, spec)
    wanted: dict[str, list[str]] = defaultdict(list)
    pairs = dict.fromkeys(batch.deals.distinct("pipeline", "stage"))  # in order of first use
    pairs.update(dict.fromkeys((m.pipeline or "", m.stage) for m in batch.moves))
    for pipeline, stage in pairs:
        wanted[pipeline].append(stage)
    for name, uses in wanted.items():
        pipe = pipes.get(name.casefold())
        if pipe is None:
            if not create_missing:
                for ref in _rows_using(batch, name, None):
                    batch.problem(
                        ref,
                        batch.column("pipeline"),
                        name,
                        "unknown pipeline; create it first, or pass --create-missing",
                    )
                continue
            spec = _infer_spec(name, uses)
            created += _ensure_spec(store, pipes, spec)
            continue
        missing = [s for s in uses if not _has_stage(pipe, s)]
        if missing and create_missing:
            for s in missing:
                kind = guess_kind(s)
                if kind is StageKind.WON:  # a pipeline has one won stage: a second won-looking name stays open
                    kind = StageKind.OPEN
                store.add_stage(pipe.id, s, kind)
                created.append(f"{kind.value} stage {s!r} in pipeline {pipe.name!r}")
            pipes[name.casefold()] = store.pipeline(pipe.id)
        elif missing:
            known = ", ".join(repr(s.name) for s in pipe.stages)
            for stage in missing:
                for ref in _rows_using(batch, name, stage):
                    batch.problem(
                        ref,
                        batch.column("stage"),
                        stage,
                        f"unknown stage of pipeline {pipe.name!r} (it has {known}); add it, or pass --create-missing",
                    )
    for pipeline, stage, reason in batch.deals.distinct("pipeline", "stage", "loss_reason"):
        _ensure_reason(store, pipes, pipeline, stage, reason, created)
    if batch.enforce_reasons:
        _check_required_reasons(batch, pipes)
    for m in batch.moves:
        _ensure_reason(store, pipes, m.pipeline or "", m.stage, m.reason, created)
    return created


def _check_required_reasons(batch: ImportBatch, pipes: dict[str, Pipeline]) -> None:
    """A deal lost without a reason, or a move to lost without one, in a pipeline that requires a reason."""

    def required(pipeline: str, stage: str) -> bool:
        pipe = pipes.get(pipeline.casefold())
        return bool(
            pipe and pipe.reason_required and _has_stage(pipe, stage) and pipe.stage(stage).kind is StageKind.LOST
        )

    strict = {pair for pair in batch.deals.distinct("pipeline", "stage") if required(*pair)}
    why = "lost without a loss reason, and this pipeline requires one; fill the reason in"
    if strict:
        cols = batch.deals.cols
        for i, (p, s, r) in enumerate(zip(cols["pipeline"], cols["stage"], cols["loss_reason"], strict=True)):
            if (p, s) in strict and not r:
                batch.problem(batch.deals.ref(i), batch.column("loss_reason"), "", why)
    for m in batch.moves:
        if not m.reason and required(m.pipeline or "", m.stage):
            batch.problem(m.ref, batch.column("reason"), "", why)


def _rows_using(batch: ImportBatch, pipeline: str, stage: str | None) -> list[RowRef]:
    """Every row (deal or move) that names this pipeline (and stage)."""
    cols = batch.deals.cols
    refs = [
        batch.deals.ref(i)
        for i, (p, s) in enumerate(zip(cols["pipeline"], cols["stage"], strict=True))
        if p == pipeline and (stage is None or s == stage)
    ]
    refs += [m.ref for m in batch.moves if (m.pipeline or "") == pipeline and (stage is None or m.stage == stage)]
    return refs


def _has_stage(pipe: Pipeline, name: str) -> bool:
    try:
        pipe.stage(name)
    except NotFoundError:
        return False
    return True


def _infer_spec(name: str, stages: Iterable[str]) -> PipelineSpec:
    """A new pipeline from the stage names a source uses, in order of first use; won and lost by their names.

    A pipeline has one won stage: further won-looking names become open stages. With no open stage seen, the
    pipeline gets a first stage called New / Новая.
    """
    names = list(dict.fromkeys(s for s in stages if s))
    lang = "ru" if any("а" <= ch.lower() <= "я" for ch in "".join(names) + name) else "en"
    won = [s for s in names if guess_kind(s) is StageKind.WON]
    lost = [s for s in names if guess_kind(s) is StageKind.LOST]
    opens = [s for s in names if s not in lost and s not in won[:1]]
    return PipelineSpec(
        name=name,
        open=opens or [{"ru": "Новая", "en": "New"}[lang]],
        won=won[0] if won else DEFAULT_WON[lang],
        lost=lost or [DEFAULT_LOST[lang]],
    )


def _ensure_spec(store: WorkspaceStore, pipes: dict[str, Pipeline], spec: PipelineSpec) -> list[str]:
    pipe = pipes.get(spec.name.casefold())
    if pipe is None:
        pipe = store.create_pipeline(
            spec.name,
            stages=spec.open,
            won=spec.won,
            lost=spec.lost,
            reasons=spec.reasons,
            reason_required=False,
            process=spec.process,
        )
        pipes[spec.name.casefold()] = pipe
        return [f"pipeline {spec.name!r}: " + " → ".join(s.name for s in pipe.stages)]
    created = []
    for name, kind in [
        *[(s, StageKind.OPEN) for s in spec.open],
        (spec.won, StageKind.WON),
        *[(s, StageKind.LOST) for s in spec.lost],
    ]:
        if not _has_stage(pipe, name):
            store.add_stage(pipe.id, name, kind)
            created.append(f"stage {name!r} in pipeline {pipe.name!r}")
    for r in spec.reasons:
        if r.casefold() not in {x.casefold() for x in pipe.reasons}:
            store.add_reason(pipe.id, r)
    pipes[spec.name.casefold()] = store.pipeline(pipe.id)
    return created


def _ensure_reason(
    store: WorkspaceStore,
    pipes: dict[str, Pipeline],
    pipeline: str,
    stage: str,
    reason: str | None,
    created: list[str],
) -> None:
    pipe = pipes.get(pipeline.casefold())
    if not reason or pipe is None or not _has_stage(pipe, stage) or pipe.stage(stage).kind is not StageKind.LOST:
        return
    if reason.strip().casefold() not in {r.casefold() for r in pipe.reasons}:
        store.add_reason(pipe.id, reason.strip())
        created.append(f"loss reason {reason.strip()!r} in pipeline {pipe.name!r}")
        pipes[pipeline.casefold()] = store.pipeline(pipe.id)


# -- deals and moves -----------------------------------------------------------------------------------------


@dataclass
class _Move:
    pipeline: Pipeline
    stage: Stage
    at: datetime
    by: str | None = None
    reason: str | None = None
    comment: str | None = None
    ref: RowRef | None = None


def _write(store: WorkspaceStore, conn: Connection, batch: ImportBatch, summary: ImportSummary, now: datetime) -> None:
    bad = _bad(batch)
    pipes = {p.name.casefold(): p for p in store.pipelines()}
    cols = batch.deals.cols
    keep: Sequence[int] = (
        [i for i in range(len(batch.deals)) if batch.deals.ref(i) not in bad] if bad else range(len(batch.deals))
    )
    history: dict[str, list[MoveRecord]] = defaultdict(list)
    for m in batch.moves:
        if m.ref not in bad:
            history[m.deal].append(m)
    # A first import of this source needs no look-up of a million ids that cannot be there.
    first = conn.execute(select(deals.c.id).where(deals.c.external_source == batch.source).limit(1)).first() is None
    existing = {} if first else _existing(conn, batch.source, [*(cols["external_id"][i] for i in keep), *history])
    owners = {o for (o,) in batch.deals.distinct("owner")} if not bad else {cols["owner"][i] for i in keep}
    user_ids = _users(store, conn, owners, batch.moves)
    # New deals the source states without history: inserted column-wise, the fast path of big first imports.
    if not existing and not history:
        fresh = keep
    else:
        ext_ids = cols["external_id"]
        fresh = [i for i in keep if ext_ids[i] not in existing and ext_ids[i] not in history]
    summary.inserted += len(fresh)
    summary.moves_added += insert_snapshots(store, conn, batch, fresh, pipes, user_ids)
    fresh_set = set() if fresh is keep else set(fresh)
    rest = [] if fresh is keep else [i for i in keep if i not in fresh_set]
    by_id = {cols["external_id"][i]: batch.deals[i] for i in rest}
    stated = set(by_id)  # deals the source describes; the others are only named by their moves
    for ext in history:
        if ext not in by_id:
            by_id[ext] = _deal_from_moves(ext, history[ext])
    new_rows, new_moves = [], []
    for ext, rec in by_id.items():
        pipe = pipes[rec.pipeline.casefold()]
        fields = _fields(rec, user_ids)
        old = existing.get(ext)
        moves = _history_moves(pipes, history[ext]) if ext in history else None
        if old is None:
            moves = moves or _snapshot_moves(pipe, rec)
            new_rows.append(
                {
                    **fields,
                    "external_id": ext,
                    "external_source": batch.source,
                    "created_at": moves[0].at,
                    "snapshot": ext not in history,
                }
            )
            new_moves.append(moves)
            summary.inserted += 1
            continue
        changed = {k: v for k, v in fields.items() if old[k] != v} if ext in stated else {}
        if moves is None:
            moves = _snapshot_change(pipe, rec, old, now)
        added = _append(store, conn, batch, old, moves, user_ids)
        if added is None:
            continue  # refused: counted among the rejected rows
        if changed or added:
            conn.execute(update(deals).where(deals.c.id == old["id"]).values(**changed, version=deals.c.version + 1))
            summary.updated += 1
            summary.moves_added += added
        else:
            summary.unchanged += 1
    if new_rows:
        summary.moves_added += _insert_new(conn, new_rows, new_moves, user_ids)


def _insert_new(
    conn: Connection, new_rows: list[dict[str, Any]], new_moves: list[list[_Move]], user_ids: dict[str, int]
) -> int:
    ids = (
        conn.execute(
            deals.insert().returning(deals.c.id, sort_by_parameter_order=True),
            [
                {
                    **r,
                    "pipeline_id": m[-1].pipeline.id,
                    "stage_id": m[-1].stage.id,
                    "stage_since": m[-1].at,
                    "version": 1,
                }
                for r, m in zip(new_rows, new_moves, strict=True)
            ],
        )
        .scalars()
        .all()
    )
    rows = [
        _move_row(deal_id, prev, m, user_ids)
        for deal_id, moves in zip(ids, new_moves, strict=True)
        for prev, m in zip([None, *moves[:-1]], moves, strict=True)
    ]
    conn.execute(stage_moves.insert(), rows)
    return len(rows)


def _existing(conn: Connection, source: str, ext_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The deals of this source already in the workspace, by external id."""
    out: dict[str, dict[str, Any]] = {}
    cols = [
        deals.c.id,
        deals.c.external_id,
        deals.c.stage_id,
        deals.c.pipeline_id,
        deals.c.stage_since,
        *[deals.c[f] for f in _DEAL_FIELDS],
    ]
    unique = list(dict.fromkeys(ext_ids))
    source_only = deals.c.external_source == source
    if len(unique) > 20_000:  # one scan of the source beats thousands of IN lists
        wanted = set(unique)
        for row in conn.execute(select(deals.c.external_id).where(source_only)):
            if row.external_id in wanted:
                out[row.external_id] = {}
        unique = list(out)
        out = {}
    for start in range(0, len(unique), 5000):
        chunk = unique[start : start + 5000]
        for row in conn.execute(select(*cols).where(source_only, deals.c.external_id.in_(chunk))):
            out[row.external_id] = dict(row._mapping)
    return out


def _users(store: WorkspaceStore, conn: Connection, owners: set[str | None], moves: list[MoveRecord]) -> dict[str, int]:
    names = {n for n in owners if n} | {m.by for m in moves if m.by}
    known = {n: i for i, n in conn.execute(select(users.c.id, users.c.name))}
    for n in sorted(names - set(known)):
        known[n] = store._user_id(conn, n)  # noqa: SLF001 - the store's own rule for new names
    return known


def _fields(rec: DealRecord, user_ids: dict[str, int]) -> dict[str, Any]:
    return {
        "title": rec.title,
        "owner_id": user_ids.get(rec.owner) if rec.owner else None,
        "amount": rec.amount,
        "currency": rec.currency,
        "source": rec.source,
        "segment": rec.segment,
        "custom": rec.custom or None,
    }


def _deal_from_moves(ext: str, moves: list[MoveRecord]) -> DealRecord:
    first = min(moves, key=lambda m: (m.at, m.ref.row or 0))
    return DealRecord(first.ref, ext, ext, first.pipeline or "", first.stage, first.at, owner=first.by)


def _history_moves(pipes: dict[str, Pipeline], records: list[MoveRecord]) -> list[_Move]:
    ordered = sorted(records, key=lambda m: (m.at, m.ref.row or 0))
    out = []
    for m in ordered:
        pipe = pipes[(m.pipeline or "").casefold()]
        out.append(_Move(pipe, pipe.stage(m.stage), m.at, m.by, m.reason, m.comment, m.ref))
    return out


def _snapshot_moves(pipe: Pipeline, rec: DealRecord) -> list[_Move]:
    stage = pipe.stage(rec.stage)
    if stage.kind is StageKind.OPEN:
        return [_Move(pipe, stage, rec.created_at, rec.owner)]
    closed = max(rec.closed_at or rec.created_at, rec.created_at)
    return [
        _Move(pipe, pipe.open_stages[0], rec.created_at, rec.owner),
        _Move(pipe, stage, closed, rec.owner, rec.loss_reason if stage.kind is StageKind.LOST else None),
    ]


def _snapshot_change(pipe: Pipeline, rec: DealRecord, old: dict[str, Any], now: datetime) -> list[_Move]:
    stage = pipe.stage(rec.stage)
    if stage.id == old["stage_id"]:
        return []
    when = rec.closed_at if stage.kind is not StageKind.OPEN and rec.closed_at else now
    reason = rec.loss_reason if stage.kind is StageKind.LOST else None
    return [_Move(pipe, stage, max(when, old["stage_since"]), rec.owner, reason)]


def _append(
    store: WorkspaceStore,
    conn: Connection,
    batch: ImportBatch,
    old: dict[str, Any],
    moves: list[_Move],
    user_ids: dict[str, int],
) -> int | None:
    """Append the moves the log lacks; None when the history cannot be appended (a problem is recorded)."""
    if not moves:
        return 0
    logged = set(
        conn.execute(select(stage_moves.c.stage_id, stage_moves.c.at).where(stage_moves.c.deal_id == old["id"])).all()
    )
    fresh = [m for m in moves if (m.stage.id, m.at) not in logged]
    if not fresh:
        return 0
    if fresh[0].at < old["stage_since"]:
        ref = fresh[0].ref or RowRef(batch.file, None)
        batch.problem(
            ref,
            batch.column("at"),
            fresh[0].at.isoformat(),
            f"this move is earlier than the deal's last logged move at {old['stage_since'].isoformat()}; "
            "history can only be appended — import the full history into a new workspace",
        )
        return None
    prev = old["stage_id"]
    rows = []
    for m in fresh:
        rows.append({**_move_row(old["id"], None, m, user_ids), "from_stage_id": prev})
        prev = m.stage.id
    conn.execute(stage_moves.insert(), rows)
    last = fresh[-1]
    conn.execute(
        update(deals)
        .where(deals.c.id == old["id"])
        .values(pipeline_id=last.pipeline.id, stage_id=last.stage.id, stage_since=last.at)
    )
    return len(rows)


def _move_row(deal_id: int, prev: _Move | None, m: _Move, user_ids: dict[str, int]) -> dict[str, Any]:
    reason_id = None
    if m.reason and m.stage.kind is StageKind.LOST:
        reason_id = reason_id_of(m.pipeline, m.reason)
    return {
        "deal_id": deal_id,
        "pipeline_id": m.pipeline.id,
        "from_stage_id": prev.stage.id if prev else None,
        "stage_id": m.stage.id,
        "at": m.at,
        "author_id": user_ids.get(m.by) if m.by else None,
        "reason_id": reason_id,
        "comment": m.comment,
    }
