"""The workspace store: pipelines, users, deals, the append-only move log, activities.

Every write runs in one transaction. A move appends to the log and updates the deal's cached stage in the same
transaction, guarded by the deal's version: an update based on a stale read is refused, never merged.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, Row, Table, bindparam, func, select, update

from voronka.domain.deal import Activity, ActivityKind, Deal, StageMove
from voronka.domain.parse import parse_amount
from voronka.domain.pipeline import Pipeline, ProcessKind, Stage, StageKind, check_stage_layout
from voronka.domain.templates import DEFAULT_LOST, DEFAULT_WON, get_template
from voronka.errors import InputError, MoveError, NotFoundError, StaleDealError
from voronka.store import migrate
from voronka.store.engine import (
    AFTER_TRANSACTION,
    BULK_OPTION,
    VERIFIED,
    WRITE,
    check_foreign_keys,
    end_bulk,
    make_engine,
    one_statement,
)
from voronka.store.schema import (
    activities,
    api_tokens,
    deals,
    loss_reasons,
    pipelines,
    stage_moves,
    sync_state,
    users,
    web_sessions,
)
from voronka.store.schema import stages as stage_table

# Pipelines read by move_deal, per engine: pipeline id -> (catalogue_version, Pipeline). Shared by the threads
# of a server (a Pipeline is immutable); a version that differs from the one read with the deal means: read again.
_PIPELINE_CACHE: weakref.WeakKeyDictionary[Engine, dict[int, tuple[int, Pipeline]]] = weakref.WeakKeyDictionary()

_DEAL_COLUMNS = (
    deals.c.id,
    deals.c.pipeline_id,
    deals.c.stage_id,
    deals.c.title,
    users.c.name.label("owner"),
    deals.c.amount,
    deals.c.currency,
    deals.c.source,
    deals.c.segment,
    deals.c.created_at,
    deals.c.stage_since,
    deals.c.version,
    deals.c.external_id,
    deals.c.external_source,
    deals.c.custom,
)


# The statements of a move, built once: building a statement costs more than SQLite takes to run it.
_USER_BY_NAME = select(users.c.id).where(users.c.name == bindparam("name"))
_DEAL_STATE = (
    select(deals.c.pipeline_id, deals.c.stage_id, deals.c.stage_since, deals.c.version, pipelines.c.catalogue_version)
    .join_from(deals, pipelines, pipelines.c.id == deals.c.pipeline_id)
    .where(deals.c.id == bindparam("deal_id"))
)
_INSERT_MOVE = stage_moves.insert()
_PIPELINE = select(pipelines).where(pipelines.c.id == bindparam("pid"))
_PIPELINE_STAGES = (
    select(stage_table).where(stage_table.c.pipeline_id == bindparam("pid")).order_by(stage_table.c.position)
)
_PIPELINE_REASONS = (
    select(loss_reasons.c.id, loss_reasons.c.name)
    .where(loss_reasons.c.pipeline_id == bindparam("pid"))
    .order_by(loss_reasons.c.id)
)
# The deal follows its move: refused (no row) when somebody changed it since the version read.
_ADVANCE_DEAL = (
    update(deals)
    .where(deals.c.id == bindparam("b_deal"), deals.c.version == bindparam("b_version"))
    .values(
        pipeline_id=bindparam("b_pipeline"),
        stage_id=bindparam("b_stage"),
        stage_since=bindparam("b_at"),
        version=bindparam("b_version") + 1,
    )
)
# On PostgreSQL, the write of a move as one statement (its own transaction, in autocommit): the version-checked
# update of the deal, and the log row inserted only when that update found the deal at the version read. Two
# round trips a move (this and the read before it) instead of five (BEGIN, read, insert, update, COMMIT); the
# version check keeps it as safe as one transaction around both.
_ADVANCED = _ADVANCE_DEAL.returning(deals.c.id).cte("advanced")
_MOVE_AND_ADVANCE = (
    stage_moves.insert()
    .from_select(
        ["deal_id", "pipeline_id", "from_stage_id", "stage_id", "at", "author_id", "reason_id", "comment"],
        select(
            _ADVANCED.c.id,
            bindparam("pipeline_id", type_=stage_moves.c.pipeline_id.type),
            bindparam("from_stage_id", type_=stage_moves.c.from_stage_id.type),
            bindparam("stage_id", type_=stage_moves.c.stage_id.type),
            bindparam("at", type_=stage_moves.c.at.type),
            bindparam("author_id", type_=stage_moves.c.author_id.type),
            bindparam("reason_id", type_=stage_moves.c.reason_id.type),
            bindparam("comment", type_=stage_moves.c.comment.type),
        ),
    )
    .returning(stage_moves.c.id)
)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _title(title: str) -> str:
    title = title.strip()
    if not title:
        raise InputError("A deal needs a non-empty title (--title).")
    return title


def _currency(currency: str) -> str:
    cur = currency.strip().upper()
    if len(cur) != 3 or not cur.isalpha():
        raise InputError(f"Malformed currency {currency!r}: use a 3-letter ISO code such as RUB, USD, EUR.")
    return cur


class WorkspaceStore:
    """Reads and writes of one workspace database.

    Parameters
    ----------
    engine
        A SQLAlchemy engine made by :func:`voronka.store.engine.make_engine`.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._tx: Connection | None = None
        self._pipelines: dict[int, Pipeline] = {}

    @classmethod
    def connect(cls, url: str, *, migrate_schema: bool = True) -> WorkspaceStore:
        """Open the workspace at ``url``, creating or upgrading its schema first."""
        engine = make_engine(url)
        if migrate_schema:
            migrate.upgrade(engine)
        return cls(engine)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    # -- transactions ---------------------------------------------------------------------------------------

    @contextmanager
    def transaction(self, *, bulk: Sequence[Table] = ()) -> Iterator[Connection]:
        """Group several writes into one transaction: all land, or none does.

        ``bulk`` names every table a bulk load writes. On SQLite their foreign keys are then not enforced row by
        row but checked once before the commit (a dangling reference rolls the whole transaction back with
        :class:`~voronka.errors.DanglingReferenceError`): a million-row load saves seconds, and SQLite may copy
        a scratch table's records as they are (:mod:`voronka.store._sqlite_copy`). Inside a transaction already
        open, ``bulk`` changes nothing.
        """
        if self._tx is not None:
            yield self._tx
            return
        options = {**WRITE, BULK_OPTION: True} if bulk else WRITE
        with self.engine.connect().execution_options(**options) as conn:
            try:
                with conn.begin():
                    self._tx = conn
                    try:
                        yield conn
                        if bulk:
                            check_foreign_keys(conn, [t.name for t in bulk])
                    finally:
                        self._tx = None
                        self._pipelines.clear()
            finally:
                for fn in conn.info.pop(AFTER_TRANSACTION, []):  # e.g. detach a bulk load's scratch file
                    fn()
                if bulk and self.engine.dialect.name == "sqlite":
                    try:
                        conn.info.pop(VERIFIED, None)
                        end_bulk(conn)  # foreign keys on, and WAL back when the load left it
                    except Exception:  # no connection may go back to the pool with foreign keys off (or out of WAL;
                        conn.invalidate()  # the next connection's set-up turns WAL on again)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        if self._tx is not None:
            yield self._tx
            return
        with self.engine.connect() as conn:
            yield conn

    def is_empty(self) -> bool:
        with self._read() as conn:
            return conn.scalar(select(func.count()).select_from(pipelines)) == 0

    def clear(self) -> None:
        """Delete every pipeline, deal, move, activity and user: an empty workspace, same schema."""
        with self.transaction() as conn:
            for table in (
                activities,
                stage_moves,
                deals,
                loss_reasons,
                stage_table,
                pipelines,
                web_sessions,
                api_tokens,
                users,
            ):
                conn.execute(table.delete())

    def get_state(self, key: str) -> Any:
        """A connector's saved state (e.g. the last synced event), or None."""
        with self._read() as conn:
            return conn.scalar(select(sync_state.c.value).where(sync_state.c.key == key))

    def set_state(self, key: str, value: Any) -> None:
        """Save a connector's state; written in the caller's transaction when there is one."""
        with self.transaction() as conn:
            done = conn.execute(
                update(sync_state).where(sync_state.c.key == key).values(value=value, updated_at=_now())
            )
            if done.rowcount == 0:
                conn.execute(sync_state.insert().values(key=key, value=value, updated_at=_now()))

    # -- users ----------------------------------------------------------------------------------------------

    def add_user(self, name: str, *, role: str = "manager", email: str | None = None) -> int:
        """Add a user (a manager by default) and return the id."""
        name = name.strip()
        if not name:
            raise InputError("A user needs a non-empty name.")
        if role not in ("admin", "head", "manager"):
            raise InputError(f"Unknown role {role!r}: use admin, head or manager.")
        with self.transaction() as conn:
            if conn.scalar(select(users.c.id).where(users.c.name == name)) is not None:
                raise InputError(f"User {name!r} already exists; pick another name.")
            return int(conn.execute(users.insert().values(name=name, role=role, email=email)).inserted_primary_key[0])

    def users(self) -> list[str]:
        with self._read() as conn:
            return list(conn.scalars(select(users.c.name).order_by(users.c.name)))

    def _user_id(self, conn: Connection, name: str | None) -> int | None:
        """The id of the user called ``name``; a name seen for the first time becomes a new manager."""
        if name is None or not name.strip():
            return None
        name = name.strip()
        found = conn.scalar(_USER_BY_NAME, {"name": name})
        if found is not None:
            return int(found)
        return int(conn.execute(users.insert().values(name=name, role="manager")).inserted_primary_key[0])

    # -- pipelines ------------------------------------------------------------------------------------------

    def create_pipeline(
        self,
        name: str,
        *,
        stages: Sequence[str] | None = None,
        template: str | None = None,
        won: str | None = None,
        lost: Sequence[str] | None = None,
        reasons: Sequence[str] = (),
        reason_required: bool = True,
        process: ProcessKind | str = ProcessKind.CUSTOM,
        sla_days: Sequence[float | None] | None = None,
        lang: str = "en",
    ) -> Pipeline:
        """Create a pipeline: open stages in order, then the won stage and one or more lost stages.

        Give either ``stages`` (open stage names) or ``template`` (see :data:`voronka.domain.TEMPLATES`; its
        last stage is the won stage unless ``won`` is given, in which case all template stages are open).
        """
        name = name.strip()
        if not name:
            raise InputError("A pipeline needs a non-empty name.")
        open_names, won_name = self._layout(stages, template, won, lang)
        lost_names = list(lost) if lost else [DEFAULT_LOST.get(lang, "Lost")]
        check_stage_layout(open_names, won_name, lost_names)
        if sla_days is not None and len(sla_days) != len(open_names):
            raise InputError(
                f"Got {len(sla_days)} SLA values for {len(open_names)} open stages; give one per open stage."
            )
        for days in sla_days or []:
            if days is not None and not days > 0:  # the rule of set_sla; `not >` also refuses NaN
                raise InputError(f"SLA {days!r} days: give a positive number of days, or none for no SLA.")
        try:
            process = ProcessKind(process)
        except ValueError:
            raise InputError(
                f"Unknown process {process!r}: use one of {', '.join(p.value for p in ProcessKind)}."
            ) from None
        clean_reasons = list(dict.fromkeys(r.strip() for r in reasons if r.strip()))
        with self.transaction() as conn:
            if any(n.casefold() == name.casefold() for n in conn.scalars(select(pipelines.c.name))):
                raise InputError(f"A pipeline named {name!r} already exists; pick another name.")
            pid = conn.execute(
                pipelines.insert().values(
                    name=name, process=process.value, reason_required=reason_required, created_at=_now()
                )
            ).inserted_primary_key[0]
            rows: list[dict[str, Any]] = [
                {"name": n.strip(), "kind": StageKind.OPEN.value, "sla_days": (sla_days or [None] * 999)[i]}
                for i, n in enumerate(open_names)
            ]
            rows.append({"name": won_name.strip(), "kind": StageKind.WON.value, "sla_days": None})
            rows += [{"name": n.strip(), "kind": StageKind.LOST.value, "sla_days": None} for n in lost_names]
            conn.execute(stage_table.insert(), [{**r, "pipeline_id": pid, "position": i} for i, r in enumerate(rows)])
            if clean_reasons:
                conn.execute(loss_reasons.insert(), [{"pipeline_id": pid, "name": r} for r in clean_reasons])
            return self._load_pipeline(conn, int(pid))

    @staticmethod
    def _layout(
        stage_names: Sequence[str] | None, template: str | None, won: str | None, lang: str
    ) -> tuple[list[str], str]:
        if (stage_names is None) == (template is None):
            raise InputError('Give either the open stages (--stages "A,B,C") or a --template, not both.')
        if template is not None:
            open_names, won_name = get_template(template).stages(lang)
            if won is not None:
                return [*open_names, won_name], won
            return open_names, won_name
        return [s for s in (stage_names or [])], won or DEFAULT_WON.get(lang, "Won")

    def set_sla(self, pipeline: str | int, stage: str | int, days: float | None) -> Stage:
        """Set (or clear, with None) the SLA of a stage in days."""
        if days is not None and days <= 0:
            raise InputError(f"SLA {days!r} days: give a positive number of days, or none to clear it.")
        p = self.pipeline(pipeline)
        s = p.stage(stage)
        with self.transaction() as conn:
            conn.execute(update(stage_table).where(stage_table.c.id == s.id).values(sla_days=days))
        return self.pipeline(p.id).stage(s.id)

    def add_stage(self, pipeline: str | int, name: str, kind: StageKind = StageKind.OPEN) -> Stage:
        """Add a stage: an open stage goes after the last open one, a lost stage at the end."""
        name = name.strip()
        with self.transaction() as conn:
            pipe = self._pipeline(conn, pipeline)
            if any(s.name.casefold() == name.casefold() for s in pipe.stages):
                raise InputError(f"Pipeline {pipe.name!r} already has a stage {name!r}.")
            if kind is StageKind.WON:
                raise InputError(
                    f"Pipeline {pipe.name!r} already has its won stage {pipe.won_stage.name!r}; "
                    f"a pipeline has one won stage."
                )
            position = len(pipe.open_stages) if kind is StageKind.OPEN else len(pipe.stages)
            conn.execute(
                update(stage_table)
                .where(stage_table.c.pipeline_id == pipe.id, stage_table.c.position >= position)
                .values(position=stage_table.c.position + 1)
            )
            conn.execute(
                stage_table.insert().values(pipeline_id=pipe.id, name=name, position=position, kind=kind.value)
            )
            self._pipelines.pop(pipe.id, None)
            return self._load_pipeline(conn, pipe.id).stage(name)

    def add_reason(self, pipeline: str | int, name: str) -> None:
        """Add a loss reason to the pipeline's catalogue (a no-op when it is there, in any letter case)."""
        with self.transaction() as conn:
            pipe = self._pipeline(conn, pipeline)
            if name.strip().casefold() not in {r.casefold() for r in pipe.reasons}:
                conn.execute(loss_reasons.insert().values(pipeline_id=pipe.id, name=name.strip()))
                self._pipelines.pop(pipe.id, None)

    def pipelines(self) -> list[Pipeline]:
        with self._read() as conn:
            ids = conn.scalars(select(pipelines.c.id).order_by(pipelines.c.id)).all()
            return [self._load_pipeline(conn, int(i)) for i in ids]

    def pipeline(self, ref: str | int) -> Pipeline:
        """Find a pipeline by id or by name (case-insensitive)."""
        with self._read() as conn:
            return self._pipeline(conn, ref)

    def _pipeline(self, conn: Connection, ref: str | int) -> Pipeline:
        # Names are matched with casefold() in Python: SQLite's lower() folds ASCII only, not Cyrillic.
        named = conn.execute(select(pipelines.c.id, pipelines.c.name).order_by(pipelines.c.id)).all()
        key = str(ref).strip()
        found = [i for i, name in named if str(i) == key] or [i for i, name in named if name == key]
        found = found or [i for i, name in named if name.casefold() == key.casefold()]
        if not found:
            names = ", ".join(repr(name) for _, name in named)
            hint = f"Use one of: {names}." if names else "Create one with `voronka pipeline create`."
            raise NotFoundError(f"Unknown pipeline {ref!r}. {hint}")
        return self._load_pipeline(conn, int(found[0]))

    def _load_pipeline(self, conn: Connection, pid: int, version: int | None = None) -> Pipeline:
        """Pipeline ``pid`` with its stages and reasons. Given its ``catalogue_version`` (read in the caller's
        statement), a pipeline this engine has read at that version comes from memory: no statement at all."""
        cached = self._pipelines.get(pid)
        if cached is not None:
            return cached
        shared = _PIPELINE_CACHE.get(self.engine)
        if version is not None and shared is not None:
            hit = shared.get(pid)
            if hit is not None and hit[0] == version:
                return hit[1]
        p = conn.execute(_PIPELINE, {"pid": pid}).one()
        st = tuple(
            Stage(r.id, r.pipeline_id, r.name, r.position, StageKind(r.kind), r.sla_days)
            for r in conn.execute(_PIPELINE_STAGES, {"pid": pid})
        )
        rs = conn.execute(_PIPELINE_REASONS, {"pid": pid}).all()
        pipe = Pipeline(
            p.id,
            p.name,
            ProcessKind(p.process),
            bool(p.reason_required),
            st,
            tuple(r.name for r in rs),
            tuple(r.id for r in rs),
        )
        if self._tx is not None:  # cached only within a transaction: other writers may change pipelines
            self._pipelines[pid] = pipe
        if shared is None:
            shared = _PIPELINE_CACHE.setdefault(self.engine, {})
        shared[pid] = (p.catalogue_version, pipe)  # the triggers of migration 0005 change it with any change
        return pipe

    def _stage_by_id(self, conn: Connection, stage_id: int) -> tuple[Pipeline, Stage]:
        pid = conn.scalar(select(stage_table.c.pipeline_id).where(stage_table.c.id == stage_id))
        pipe = self._load_pipeline(conn, int(pid))
        return pipe, pipe.stage(stage_id)

    # -- deals and moves ------------------------------------------------------------------------------------

    def add_deal(
        self,
        pipeline: str | int,
        title: str,
        *,
        owner: str | None = None,
        amount: Decimal | str | float | None = None,
        currency: str = "RUB",
        source: str | None = None,
        segment: str | None = None,
        at: datetime | None = None,
        external_id: str | None = None,
        external_source: str = "",
        custom: dict[str, Any] | None = None,
        stage: str | int | None = None,
        by: str | None = None,
        reason: str | None = None,
    ) -> Deal:
        """Create a deal in the first open stage (or ``stage``) and log that entry as its first move."""
        title = _title(title)
        money = None if amount is None else parse_amount(amount)
        cur = _currency(currency)
        created = at or _now()
        with self.transaction() as conn:
            pipe = self._pipeline(conn, pipeline)
            dst = pipe.stage(stage) if stage is not None else pipe.open_stages[0]
            reason_id, _ = self._reason_for(pipe, dst, reason)
            if external_id is not None and conn.scalar(
                select(deals.c.id).where(deals.c.external_source == external_source, deals.c.external_id == external_id)
            ):
                raise InputError(
                    f"A deal with external id {external_id!r} already exists; external ids are unique "
                    f"per source. Use `voronka deal show --external-id {external_id}` to see it."
                )
            deal_id = conn.execute(
                deals.insert().values(
                    pipeline_id=pipe.id,
                    stage_id=dst.id,
                    stage_since=created,
                    title=title,
                    owner_id=self._user_id(conn, owner),
                    amount=money,
                    currency=cur,
                    source=source or None,
                    segment=segment or None,
                    created_at=created,
                    external_id=external_id,
                    external_source=external_source,
                    custom=custom or None,
                    version=1,
                )
            ).inserted_primary_key[0]
            conn.execute(
                stage_moves.insert().values(
                    deal_id=deal_id,
                    pipeline_id=pipe.id,
                    from_stage_id=None,
                    stage_id=dst.id,
                    at=created,
                    author_id=self._user_id(conn, by),
                    reason_id=reason_id,
                )
            )
            return self._deal(conn, int(deal_id))

    @staticmethod
    def _reason_for(pipe: Pipeline, dst: Stage, reason: str | None) -> tuple[int | None, str | None]:
        """The loss reason of a move to ``dst``: its id and catalogue spelling, or Nones (checked)."""
        if dst.kind is not StageKind.LOST:
            if reason:
                raise MoveError(
                    f"A loss reason ({reason!r}) is only for moves to a lost stage, and {dst.name!r} is "
                    f"{dst.kind.value}. Drop --reason, or move to a lost stage."
                )
            return None, None
        if not reason:
            if pipe.reason_required:
                listed = ", ".join(repr(r) for r in pipe.reasons) or "(none yet: add reasons to the pipeline)"
                raise MoveError(
                    f"Moving to lost stage {dst.name!r} needs a loss reason in pipeline {pipe.name!r}. "
                    f"Give --reason, one of: {listed}."
                )
            return None, None
        name = pipe.reason(reason)
        return pipe.reason_ids[pipe.reasons.index(name)], name

    def move_deal(
        self,
        deal_id: int,
        stage: str | int,
        *,
        at: datetime | None = None,
        reason: str | None = None,
        by: str | None = None,
        comment: str | None = None,
        pipeline: str | int | None = None,
        expected_version: int | None = None,
        by_id: int | None = None,
    ) -> StageMove:
        """Move a deal to ``stage`` (of ``pipeline`` when moving to another pipeline) and log the move.

        ``by`` names the author (a name seen for the first time becomes a new manager); a caller that knows the
        author's user id (a signed-in account) passes it as ``by_id`` too, and no look-up is spent on it.

        Raises
        ------
        MoveError
            The move breaks a rule: unknown stage, lost without a reason, a time before the last move.
        StaleDealError
            ``expected_version`` is not the deal's version: somebody changed the deal since it was read.
        """
        when = at or _now()
        args = (deal_id, stage, when, reason, by, comment, pipeline, expected_version, by_id)
        if self._tx is None and self.engine.dialect.name == "postgresql" and (by_id is not None or not by):
            # One read and one write statement, each its own transaction: see _MOVE_AND_ADVANCE.
            with self.engine.connect().execution_options(**one_statement(self.engine)) as conn:
                return self._write_move(conn, *args, one_write=True)
        with self.transaction() as conn:
            return self._write_move(conn, *args, one_write=False)

    def _write_move(
        self,
        conn: Connection,
        deal_id: int,
        stage: str | int,
        when: datetime,
        reason: str | None,
        by: str | None,
        comment: str | None,
        pipeline: str | int | None,
        expected_version: int | None,
        by_id: int | None,
        *,
        one_write: bool,
    ) -> StageMove:
        row = conn.execute(_DEAL_STATE, {"deal_id": deal_id}).one_or_none()
        if row is None:
            raise NotFoundError(f"No deal with id {deal_id}. List deals with `voronka funnel` or the board.")
        version = row.version if expected_version is None else expected_version
        if version != row.version:
            raise StaleDealError(
                f"Deal {deal_id} changed since you read it (your version {expected_version}, now "
                f"{row.version}). Reload the deal and repeat the move if it still makes sense."
            )
        if pipeline is None:
            pipe = self._load_pipeline(conn, row.pipeline_id, row.catalogue_version)
        else:
            pipe = self._pipeline(conn, pipeline)
        dst = pipe.stage(stage)
        if dst.id == row.stage_id:
            raise MoveError(f"Deal {deal_id} is already in stage {dst.name!r}; nothing to move.")
        if when < row.stage_since:
            raise MoveError(
                f"Time {_iso(when)} is before the deal's last move at {_iso(row.stage_since)}; the log "
                f"is kept in time order. Give --at on or after {_iso(row.stage_since)}."
            )
        reason_id, reason_name = self._reason_for(pipe, dst, reason)
        author_id = by_id if by_id is not None else self._user_id(conn, by)
        move = {
            "deal_id": deal_id,
            "pipeline_id": pipe.id,
            "from_stage_id": row.stage_id,
            "stage_id": dst.id,
            "at": when,
            "author_id": author_id,
            "reason_id": reason_id,
            "comment": comment,
        }
        advance = {"b_deal": deal_id, "b_version": version, "b_pipeline": pipe.id, "b_stage": dst.id, "b_at": when}
        if one_write:
            move_id = conn.execute(_MOVE_AND_ADVANCE, {**move, **advance}).scalar()
            advanced = move_id is not None
        else:
            move_id = conn.execute(_INSERT_MOVE, move).inserted_primary_key[0]
            advanced = conn.execute(_ADVANCE_DEAL, advance).rowcount == 1
        if not advanced:
            raise StaleDealError(
                f"Deal {deal_id} was changed by someone else while this move was being written; "
                f"nothing was saved. Reload the deal and repeat the move."
            )
        # What was written, as reading it back would give it (times in UTC), without the read.
        return StageMove(
            int(move_id),
            deal_id,
            pipe.id,
            row.stage_id,
            dst.id,
            when.astimezone(UTC),
            by.strip() if author_id is not None and by else None,
            reason_name,
            comment,
        )

    def update_deal(self, deal_id: int, *, expected_version: int, **fields: Any) -> Deal:
        """Change a deal's fields (title, owner, amount, currency, source, segment, custom), checked."""
        allowed = {"title", "owner", "amount", "currency", "source", "segment", "custom"}
        unknown = set(fields) - allowed
        if unknown:
            raise InputError(f"Cannot update {sorted(unknown)}; editable fields are {sorted(allowed)}.")
        values = dict(fields)
        # The rules of add_deal: a title is not empty, a currency is a 3-letter code, no source is None.
        if "title" in values:
            values["title"] = _title(values["title"])
        if "currency" in values:
            values["currency"] = _currency(values["currency"])
        for key in ("source", "segment"):
            if key in values:
                values[key] = values[key] or None
        with self.transaction() as conn:
            if "owner" in values:
                values["owner_id"] = self._user_id(conn, values.pop("owner"))
            if values.get("amount") is not None:
                values["amount"] = parse_amount(values["amount"])
            done = conn.execute(
                update(deals)
                .where(deals.c.id == deal_id, deals.c.version == expected_version)
                .values(**values, version=expected_version + 1)
            )
            if done.rowcount != 1:
                current = conn.scalar(select(deals.c.version).where(deals.c.id == deal_id))
                if current is None:
                    raise NotFoundError(f"No deal with id {deal_id}.")
                raise StaleDealError(
                    f"Deal {deal_id} changed since you read it (your version {expected_version}, now "
                    f"{current}). Reload the deal and make the change again."
                )
            return self._deal(conn, deal_id)

    def deal(self, deal_id: int) -> Deal:
        with self._read() as conn:
            return self._deal(conn, deal_id)

    def deal_by_external_id(self, external_id: str, *, source: str = "") -> Deal:
        with self._read() as conn:
            found = conn.scalar(
                select(deals.c.id).where(deals.c.external_source == source, deals.c.external_id == external_id)
            )
            if found is None:
                raise NotFoundError(
                    f"No deal with external id {external_id!r}" + (f" from {source!r}." if source else ".")
                )
            return self._deal(conn, int(found))

    def _deal(self, conn: Connection, deal_id: int) -> Deal:
        row = conn.execute(
            select(*_DEAL_COLUMNS)
            .select_from(deals.outerjoin(users, users.c.id == deals.c.owner_id))
            .where(deals.c.id == deal_id)
        ).one_or_none()
        if row is None:
            raise NotFoundError(f"No deal with id {deal_id}.")
        return _to_deal(row)

    def history(self, deal_id: int) -> list[StageMove]:
        """The deal's moves in log order."""
        with self._read() as conn:
            self._deal(conn, deal_id)
            ids = conn.scalars(
                select(stage_moves.c.id).where(stage_moves.c.deal_id == deal_id).order_by(stage_moves.c.id)
            )
            return [self._move(conn, int(i)) for i in ids]

    def _move(self, conn: Connection, move_id: int) -> StageMove:
        m = stage_moves
        row = conn.execute(
            select(m, users.c.name.label("author"), loss_reasons.c.name.label("reason"))
            .select_from(
                m.outerjoin(users, users.c.id == m.c.author_id).outerjoin(
                    loss_reasons, loss_reasons.c.id == m.c.reason_id
                )
            )
            .where(m.c.id == move_id)
        ).one()
        return StageMove(
            row.id,
            row.deal_id,
            row.pipeline_id,
            row.from_stage_id,
            row.stage_id,
            row.at,
            row.author,
            row.reason,
            row.comment,
        )

    def stage_of(self, stage_id: int) -> tuple[Pipeline, Stage]:
        """The pipeline and stage of a stage id (for rendering moves)."""
        with self._read() as conn:
            return self._stage_by_id(conn, stage_id)

    # -- activities -----------------------------------------------------------------------------------------

    def add_activity(
        self,
        deal_id: int,
        kind: ActivityKind | str,
        *,
        at: datetime | None = None,
        due_at: datetime | None = None,
        done: bool = False,
        by: str | None = None,
        note: str | None = None,
    ) -> Activity:
        """Log a call, meeting, message or task on a deal."""
        try:
            kind = ActivityKind(kind)
        except ValueError:
            raise InputError(
                f"Unknown activity kind {kind!r}: use one of {', '.join(k.value for k in ActivityKind)}."
            ) from None
        with self.transaction() as conn:
            self._deal(conn, deal_id)
            aid = conn.execute(
                activities.insert().values(
                    deal_id=deal_id,
                    kind=kind.value,
                    at=at or _now(),
                    due_at=due_at,
                    done=done,
                    author_id=self._user_id(conn, by),
                    note=note,
                )
            ).inserted_primary_key[0]
            return self._activity(conn, int(aid))

    def complete_activity(self, activity_id: int) -> Activity:
        with self.transaction() as conn:
            if conn.execute(update(activities).where(activities.c.id == activity_id).values(done=True)).rowcount != 1:
                raise NotFoundError(f"No activity with id {activity_id}.")
            return self._activity(conn, activity_id)

    def activities(self, deal_id: int) -> list[Activity]:
        with self._read() as conn:
            ids = conn.scalars(select(activities.c.id).where(activities.c.deal_id == deal_id).order_by(activities.c.at))
            return [self._activity(conn, int(i)) for i in ids]

    def _activity(self, conn: Connection, activity_id: int) -> Activity:
        a = activities
        row = conn.execute(
            select(a, users.c.name.label("author"))
            .select_from(a.outerjoin(users, users.c.id == a.c.author_id))
            .where(a.c.id == activity_id)
        ).one()
        return Activity(
            row.id,
            row.deal_id,
            ActivityKind(row.kind),
            row.at,
            row.due_at,
            bool(row.done),
            row.author,
            row.note,
        )


def _to_deal(row: Row[Any]) -> Deal:
    return Deal(
        id=row.id,
        pipeline_id=row.pipeline_id,
        stage_id=row.stage_id,
        title=row.title,
        owner=row.owner,
        amount=row.amount,
        currency=row.currency,
        source=row.source,
        segment=row.segment,
        created_at=row.created_at,
        stage_since=row.stage_since,
        version=row.version,
        external_id=row.external_id,
        external_source=row.external_source or None,
        custom=row.custom or {},
    )
