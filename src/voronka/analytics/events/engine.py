"""The in-process engine: DuckDB reads only the needed columns, computes each row's step mask and prunes what cannot
matter; its rows stream in batches into a compiled Numba pass (``_table``: each row finds its entity in a hash table
of its bucket, first touch included; ``_kernel``: each bucket's entities grouped, ordered and walked, in parallel).
No global sort, no GROUP BY in SQL; the scan and the pass share the two cores.
"""

from __future__ import annotations

import gc
import queue
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
from numpy.typing import NDArray

from voronka.analytics._jit import readonly
from voronka.analytics.events import _bits as K
from voronka.analytics.events.query import FunnelQuery, FunnelQueryError, _us, to_micros
from voronka.analytics.events.result import FunnelResult, Units, build_result
from voronka.analytics.events.source import EventSource, _is_store, check_columns, column_types, relation_sql
from voronka.analytics.events.sql import (
    DUCKDB,
    INT_TYPES,
    base_type,
    is_int,
    is_numeric,
    mask_sql,
    prune_sql,
    time_us_sql,
)
from voronka.analytics.events.stages import crm_union_sql

_SMALL_INT_RANGE = 1 << 16
# Rows per batch handed from the scan to the compiled pass (DuckDB may hand fewer). A batch's Arrow buffers are fresh
# pages when they are big (the kernel zeroes each: 1M-row batches cost a third more page faults and 0.1 GiB more
# peak at 10M events than 256k-row ones); much smaller batches cost per-batch overhead.
_BATCH = 1 << 18
_MAX_BITS = 8  # 256 buckets: each bucket's table stays in cache while a batch enters it
_PARALLEL_ROWS = 1 << 16  # a smaller batch enters the table on one thread
_DTYPES = (np.int64, np.int64, np.int32, np.int32)  # entity key, time µs, mask, code
_EVENT_DTYPES = (np.int64, np.int64, np.int64, np.int32)  # entity key, time µs, event value, code
_KEPT_DTYPES = (np.int32, np.int64, np.int32, np.int32)  # local id, time µs, mask, code
_KEPT_RESERVE = 1 << 24  # rows of kept columns reserved at first (address space; pages are touched as filled)
_KEPT_SMALL = 1 << 16  # a first batch smaller than this reserves only its own rows


_kernels_loaded = False


def run_inprocess(
    source: EventSource,
    q: FunnelQuery,
    *,
    threads: int | None = None,
    enter_threads: int = 2,
    event_values: bool = True,
) -> FunnelResult:
    """Compute the funnel ``q`` over ``source`` in this process.

    DuckDB scans with ``threads`` threads, one by default: the entity table takes a core of its own meanwhile
    (measured on two cores: a 10M-event log 10-30% faster than with DuckDB on both, and smaller).
    ``enter_threads`` threads enter each batch into the entity table (half the buckets each).
    With ``event_values`` (the default), a log whose event column is an integer and whose steps are plain event
    values hands the event values over and the compiled pass makes the masks (``EventRule``); otherwise, or with
    ``event_values=False``, the masks are made in SQL.
    """
    box: dict[str, Any] = {}
    # Sixteen batches (4M rows, about 110 MB) may wait: the scan runs on while this thread loads the kernels (about
    # 0.3 s of CPU the first time in a process).
    batches: queue.Queue[tuple[NDArray[Any], ...] | None] = queue.Queue(maxsize=16)
    stop = threading.Event()

    def scan() -> None:
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET preserve_insertion_order = false")
            con.execute(f"SET threads = {int(threads or 1)}")
            sql, box["entity_labels"], box["labels"], rule = _scan_sql(con, source, q, event_values)
            box["rule"] = rule
            dtypes, fill = (_DTYPES, None) if rule is None else (_EVENT_DTYPES, rule.missing)
            for batch in _arrow_reader(con.sql(sql)):
                if stop.is_set():
                    break
                batches.put(tuple(_numpy(batch.column(k), dt, fill) for k, dt in enumerate(dtypes)))
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc
        finally:
            batches.put(None)
            con.close()

    # DuckDB scans (without the GIL) while this thread loads the compiled kernels, then enters each batch as it
    # comes: the scan and the entity table each have a core; the walk at the end has both.
    reader = threading.Thread(target=scan, name="voronka-events-scan")
    reader.start()
    batch: tuple[NDArray[Any], ...] | None = ()
    try:
        if not _kernels_loaded:
            _warm_up(q)
        ingest = Ingest(q, enter_threads)
        while (batch := batches.get()) is not None:
            if box["rule"] is None:
                ingest.add(*batch)
            else:
                ingest.add_events(*batch, rule=box["rule"])
    finally:
        stop.set()
        while batch is not None:  # this thread failed: unblock the scan
            batch = batches.get()
        reader.join()
    if "error" in box:
        raise box["error"]
    units = ingest.units()
    entity_labels = box["entity_labels"]
    if entity_labels is not None:
        units.entity = entity_labels[units.entity]
    return build_result(q, units, box["labels"], "inprocess")


def _numpy(col: Any, dtype: Any, fill: int | None = None) -> NDArray[Any]:
    """An Arrow column as a NumPy view (``to_numpy`` would import pandas, most of a second); nulls become ``fill``
    (a copy then)."""
    if col.type.bit_width != np.dtype(dtype).itemsize * 8:
        return np.asarray(col.to_numpy(zero_copy_only=False), dtype=dtype)
    values = np.frombuffer(col.buffers()[1], dtype, count=len(col), offset=col.offset * np.dtype(dtype).itemsize)
    if col.null_count:
        if fill is None:
            raise ValueError("a null where the scan allows none")  # the SQL rules them out
        bits = np.unpackbits(np.frombuffer(col.buffers()[0], np.uint8), bitorder="little")
        values = np.where(bits[col.offset : col.offset + len(col)].astype(bool), values, dtype(fill))
    return values


def _arrow_reader(rel: duckdb.DuckDBPyRelation) -> Any:
    reader = getattr(rel, "to_arrow_reader", None)  # DuckDB 1.4+; fetch_arrow_reader before
    return reader(_BATCH) if reader is not None else rel.fetch_arrow_reader(_BATCH)


def _scan_sql(
    con: duckdb.DuckDBPyConnection, source: EventSource, q: FunnelQuery, event_values: bool = True
) -> tuple[str, NDArray[Any] | None, NDArray[Any] | None, EventRule | None]:
    """The SQL of the rows the compiled pass needs (entity key, time µs, mask, code), entity labels when the entity
    column is not an integer, breakdown labels, and the ``EventRule`` when the pass makes the masks itself (the
    third column is then the event value: every row is handed over, the pass prunes).

    A row that can matter for the walk keeps its mask, others get 0; with first-touch attribution every event row
    (not a CRM stage row) also sets ``FIRST_TOUCH``, and only rows with neither are pruned here.
    """
    rel = relation_sql(con, source)
    types = column_types(con, rel)
    check_columns(types, source, q)
    d = DUCKDB
    t = time_us_sql(d, source.time, types[source.time])
    _check_times(con, rel, source.time, t, types[source.time])
    joins = ""
    entity_labels = None
    if is_int(d, types[source.entity]):
        key = f"CAST({d.ident(source.entity)} AS BIGINT)"
    else:
        con.execute(
            "CREATE TEMP TABLE voronka_ents AS SELECT voronka_ev, "
            "CAST(row_number() OVER (ORDER BY voronka_ev) - 1 AS BIGINT) AS voronka_k "
            f"FROM (SELECT DISTINCT CAST({d.ident(source.entity)} AS VARCHAR) AS voronka_ev FROM {rel} "
            f"WHERE {d.ident(source.entity)} IS NOT NULL)"
        )
        entity_labels = con.execute("SELECT voronka_ev FROM voronka_ents ORDER BY voronka_k").fetchnumpy()["voronka_ev"]
        entity_labels = np.asarray(entity_labels, dtype=object)
        joins += f" JOIN voronka_ents ON CAST(base.{d.ident(source.entity)} AS VARCHAR) = voronka_ents.voronka_ev"
        key = "voronka_ents.voronka_k"
    code, labels, join = _codes(con, rel, q, types)
    joins += join
    inner = f"(SELECT *, {t} AS voronka_t FROM {rel})"
    stages = bool(q.stage_steps)
    if stages:
        if source.crm is None and not _is_store(source.data):
            raise FunnelQueryError("stages.workspace", "CRM stage steps need a workspace: pass EventSource(crm=ws).")
        inner = crm_union_sql(con, source, q, inner, d.ident)
    tt = "voronka_t"
    rule = event_rule(q, types[source.event]) if event_values and not stages else None
    if rule is not None:
        sql = (
            f"SELECT {key} AS e, CAST({tt} AS BIGINT) AS t, CAST({d.ident(source.event)} AS BIGINT) AS v, "
            f"CAST({code} AS INTEGER) AS c FROM {inner} AS base{joins} WHERE {key} IS NOT NULL AND {tt} IS NOT NULL"
        )
        return sql, entity_labels, labels, rule
    mask = mask_sql(d, q, source.event, types, tt)
    prune = prune_sql(d, q, source.event, types, tt)
    where = f"{key} IS NOT NULL AND {tt} IS NOT NULL"
    if q.by is not None and q.attribution == "first_touch":
        event_row = "NOT voronka_stage" if stages else "TRUE"
        m = f"(CASE WHEN {prune} THEN {mask} ELSE 0 END) + (CASE WHEN {event_row} THEN {K.FIRST_TOUCH} ELSE 0 END)"
        where += f" AND ({prune} OR {event_row})" if stages else ""
    else:
        m = mask
        where += f" AND {prune}"
    sql = (
        f"SELECT {key} AS e, CAST({tt} AS BIGINT) AS t, CAST({m} AS INTEGER) AS m, CAST({code} AS INTEGER) AS c "
        f"FROM {inner} AS base{joins} WHERE {where}"
    )
    return sql, entity_labels, labels, None


_INT64_TYPES = tuple(t for t in INT_TYPES if t not in ("UBIGINT", "HUGEINT"))  # the integers that fit an int64
_LUT_SPAN = 1 << 16  # event values named by steps further apart than this are matched in SQL


@dataclass(frozen=True)
class EventRule:
    """How the compiled pass makes a row's mask from its event value and time (``_table.bucket_order_events``):
    a lookup table of the bits each event value sets, the rule (``_bits.R_*``), and a value no step names (for
    null events)."""

    lut: NDArray[np.int32]
    rule: NDArray[np.int64]
    missing: int


def event_rule(q: FunnelQuery, event_type: str) -> EventRule | None:
    """The ``EventRule`` of ``q`` when the event column is an integer and every step, exclusion and tracked event is
    a plain integer event value (what ``sql.mask_sql`` and ``sql.prune_sql`` compute then); else None."""
    if base_type(event_type).upper() not in _INT64_TYPES:
        return None
    if any(s.event is None or s.where for s in (*q.step_list, *(e.step for e in q.exclusion_list))):
        return None
    bits: dict[int, int] = {}
    named = [(s.event, 1 << k) for k, s in enumerate(q.step_list)]
    named += [(e.step.event, 1 << (K.EXCL_SHIFT + i)) for i, e in enumerate(q.exclusion_list)]
    named += [(name, 0) for name in (q.tracked or ()) if q.mode == "strict"]
    for name, bit in named:
        try:
            v = int(str(name))  # as sql.literal reads a name against a numeric column
        except ValueError:
            return None
        if not -(2**63) <= v < 2**63:
            return None
        bits[v] = bits.get(v, 0) | bit | K.KEEP
    low, high = min(bits), max(bits)
    if high - low >= _LUT_SPAN:
        return None
    lut = np.zeros(high - low + 3, np.int32)  # lut[0] and lut[-1]: every value outside the span
    for v, b in bits.items():
        lut[v - low + 1] = b
    missing = -(2**63)
    while missing in bits:
        missing += 1
    rule = np.zeros(K.R_SIZE, np.int64)
    rule[K.R_LUT_LOW] = low
    rule[K.R_STRICT_ALL] = q.mode == "strict" and q.tracked is None
    rule[K.R_FIRST_TOUCH] = q.by is not None and q.attribution == "first_touch"
    if q.start is not None:
        rule[K.R_HAS_START], rule[K.R_START] = 1, to_micros(q.start)
        rule[K.R_PRUNE_START] = not any(s.first_time for s in q.step_list)
    if q.end is not None:
        rule[K.R_HAS_END], rule[K.R_END] = 1, to_micros(q.end)
        clip = q.after_range == "clip"
        rule[K.R_LIMIT_KIND] = 1 if clip else 2
        rule[K.R_LIMIT] = to_micros(q.end) if clip else to_micros(q.end) + q.window_us
    return EventRule(lut, rule, missing)


def _check_times(con: duckdb.DuckDBPyConnection, rel: str, col: str, t: str, sql_type: str) -> None:
    """Text times must all parse; the first that does not is shown."""
    if is_numeric(sql_type) or sql_type.upper().startswith(("TIMESTAMP", "DATE")):
        return
    c = DUCKDB.ident(col)
    # fetchall, not fetchone: a result left unfinished keeps the connection from streaming the scan.
    rows = con.execute(f"SELECT {c} FROM {rel} WHERE {c} IS NOT NULL AND {t} IS NULL LIMIT 1").fetchall()
    if rows:
        bad = rows[0]
        raise FunnelQueryError(
            "source.time",
            f"Time {bad[0]!r} in column {col!r} is not a time: use ISO 8601 (2026-03-01T14:30:00, a zone such as "
            f"+03:00 or a trailing ' UTC' is honoured, none means UTC) or epoch seconds / milliseconds.",
        )


def _codes(
    con: duckdb.DuckDBPyConnection, rel: str, q: FunnelQuery, types: dict[str, str]
) -> tuple[str, NDArray[Any] | None, str]:
    """SQL for the breakdown code of a row (-1 when the value is null), the labels per code, and a join if any."""
    if q.by is None:
        return "0", None, ""
    c = DUCKDB.ident(q.by)
    if is_int(DUCKDB, types[q.by]):
        lo, hi = con.execute(f"SELECT min({c}), max({c}) FROM {rel}").fetchall()[0]
        if lo is None:
            return "-1", np.array([], dtype=object), ""
        if hi - lo < _SMALL_INT_RANGE:
            labels = np.array([str(v) for v in range(int(lo), int(hi) + 1)], dtype=object)
            return f"COALESCE(CAST({c} AS BIGINT) - {int(lo)}, -1)", labels, ""
    con.execute(
        "CREATE TEMP TABLE voronka_vals AS SELECT voronka_v, "
        "CAST(row_number() OVER (ORDER BY voronka_v) - 1 AS INTEGER) "
        f"AS voronka_code FROM (SELECT DISTINCT {c} AS voronka_v FROM {rel} WHERE {c} IS NOT NULL)"
    )
    labels = np.array(
        [
            str(v)
            for v in con.execute("SELECT voronka_v FROM voronka_vals ORDER BY voronka_code").fetchnumpy()["voronka_v"]
        ]
    )
    join = f" LEFT JOIN voronka_vals ON base.{c} = voronka_vals.voronka_v"
    return "COALESCE(voronka_vals.voronka_code, -1)", labels.astype(object), join


def kernel_params(q: FunnelQuery) -> tuple[Any, ...]:
    n = len(q.step_list)
    within = np.array([-1 if s.within is None else _us(s.within) for s in q.step_list], dtype=np.int64)
    gap = np.array([0 if s.min_gap is None else _us(s.min_gap) for s in q.step_list], dtype=np.int64)
    ex_after = np.array([e.after for e in q.exclusion_list], dtype=np.int64)
    ex_before = np.array([n if e.before is None else e.before for e in q.exclusion_list], dtype=np.int64)
    mode = {"ordered": K.ORDERED, "strict": K.STRICT, "any": K.ANY}[q.mode]
    return (np.int64(q.window_us), within, gap, mode, ex_after, ex_before, q.exclusion_policy == "remove")


def _warm_up(q: FunnelQuery) -> None:
    """Load (or compile) the kernels on a one-row log, so the first real batch runs at once.

    The first time in a process this takes about 0.3 s of CPU (Numba's import included): the kernels load from the
    cache without Numba's compiler set-up (``_jit``), with the GC paused and SciPy's BLAS left alone: Numba asks
    once per process, on first use, whether ``scipy.linalg.cython_blas`` imports (a quarter of a second); the
    kernels use no BLAS, so that one question is answered "no" (Numba code in this process then has no ``np.dot``;
    nothing else changes, SciPy included). The objects alive after that first load (Numba's many) are then frozen,
    so later collections and the exit skip them.
    """
    first = "voronka.analytics.events._kernel" not in sys.modules
    collecting = gc.isenabled()
    gc.disable()
    try:
        if first:
            _load_numba_without_blas()
        _run_one_row(q)
    finally:
        if collecting:
            gc.enable()
    if first:
        gc.freeze()
    global _kernels_loaded
    _kernels_loaded = True  # later calls go straight to their batches (a one-row run costs 10-15 ms)


def _load_numba_without_blas() -> None:
    if "numba.np.arraymath" in sys.modules:
        return
    import numba.np.linalg as linalg

    def no_blas() -> None:
        raise ImportError("not asked: the event-funnel kernels use no BLAS")

    asks = linalg.ensure_blas
    linalg.ensure_blas = no_blas  # arraymath calls it once, at import
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        linalg.ensure_blas = asks


def _run_one_row(q: FunnelQuery) -> None:
    ingest = Ingest(q)
    ingest.add(*(np.zeros(1, dt) for dt in _DTYPES))
    rule = event_rule(FunnelQuery(steps=("0",)), "BIGINT")
    assert rule is not None and ingest.table is not None
    ingest.add_events(*(np.zeros(1, dt) for dt in _EVENT_DTYPES), rule=rule)
    ingest._grow()  # loaded now, not in the middle of a scan
    ingest.units()


class Ingest:
    """Rows in, units out: batches enter the entity table (``_table``), then ``units`` walks every entity."""

    def __init__(self, q: FunnelQuery, threads: int = 1) -> None:
        self.q = q
        self.threads = threads  # 2: a batch enters the table, and the walk runs, on two threads (half each)
        self.table: tuple[NDArray[Any], ...] | None = None
        self.bits = 0
        # The kept rows (local id, time, mask, code), batch after batch, each batch in bucket order: whole columns
        # reserved big and filled in place (untouched pages cost nothing; copies and fresh pages per batch did).
        self.cols: tuple[NDArray[Any], ...] | None = None
        self.n_kept = 0
        self.counts: list[NDArray[np.int64]] = []  # per batch: kept rows per bucket
        self.scratch: tuple[NDArray[Any], ...] | None = None  # rows in bucket order (records), bucket per row

    def add(self, ent: NDArray[Any], ts: NDArray[Any], mask: NDArray[Any], code: NDArray[Any]) -> None:
        """Enter rows with their masks (made in SQL)."""
        from voronka.analytics.events import _table

        ent, ts, mask, code = (readonly(a, dt) for a, dt in zip((ent, ts, mask, code), _DTYPES, strict=True))
        rec, bucket = self._prepare(len(ent))
        self._enter(_table.bucket_order(ent, ts, mask, code, self.bits, rec, bucket))

    def add_events(
        self, ent: NDArray[Any], ts: NDArray[Any], ev: NDArray[Any], code: NDArray[Any], *, rule: EventRule
    ) -> None:
        """Enter rows with their event values: the masks are made on the way (``rule``)."""
        from voronka.analytics.events import _table

        ent, ts, ev, code = (readonly(a, dt) for a, dt in zip((ent, ts, ev, code), _EVENT_DTYPES, strict=True))
        rec, bucket = self._prepare(len(ent))
        self._enter(_table.bucket_order_events(ent, ts, ev, code, self.bits, rec, bucket, rule.lut, rule.rule))

    def _prepare(self, n: int) -> tuple[NDArray[np.int64], NDArray[np.int16]]:
        """The scratch for a batch of ``n`` rows: the rows in bucket order (records), the bucket of each row."""
        from voronka.analytics.events import _table

        if self.table is None:
            # A small log (one short batch) gets about 2,000 rows a bucket; a longer one 256 buckets.
            self.bits = int(np.clip(np.ceil(np.log2(max(n, 1) / 2048)), 0, _MAX_BITS))
            self.table = _table.new_table(self.bits)
        if self.scratch is None or len(self.scratch[-1]) < n:
            # Reused from batch to batch: fresh pages would cost a fault each (a third of the time).
            self.scratch = (np.empty((n, 3), np.int64), np.empty(n, np.int16))
        self._reserve(n)
        return self.scratch[0], self.scratch[-1]

    def _reserve(self, n: int) -> None:
        """Room in the kept columns for ``n`` more rows: a first batch of a full size reserves 16M rows (320 MB of
        address space, touched only as rows come); when full, the columns double (one copy)."""
        need = self.n_kept + n
        if self.cols is not None and len(self.cols[0]) >= need:
            return
        if self.cols is None:
            cap = need if n < _KEPT_SMALL else max(need, _KEPT_RESERVE)  # a small first batch: a small log
        else:
            cap = max(need, 2 * len(self.cols[0]))
        cols = tuple(np.empty(cap, dt) for dt in _KEPT_DTYPES)
        if self.cols is not None:
            for new, old in zip(cols, self.cols, strict=True):
                new[: self.n_kept] = old[: self.n_kept]
        self.cols = cols

    def _enter(self, starts: NDArray[np.int64]) -> None:
        """Enter the rows ``bucket_order`` left in the scratch into the tables; keep those that matter.

        With two threads and rows enough, each thread enters the rows of half the buckets (disjoint slots and
        counts); the second half's kept rows are written from where its rows start (the first half's kept rows
        cannot reach there) and joined to the first half's after."""
        assert self.scratch is not None and self.cols is not None
        rec, out, base = self.scratch[0], self.cols, self.n_kept
        nb = len(starts) - 1
        kept = np.zeros(nb, np.int64)
        parts = _parts(starts, self.threads)
        # Per part: [bucket to resume from (-1: done), row to resume from, where its kept rows start, end, last bucket]
        todo = [[b0, int(starts[b0]), base + int(starts[b0]), base + int(starts[b0]), b1] for b0, b1 in parts]
        while True:
            self._enter_parts(rec, starts, todo, out, kept)
            if all(t[0] < 0 for t in todo):
                break
            self._grow()  # a bucket is three quarters full: every bucket doubles, then the parts resume
        end = todo[0][3]
        for t in todo[1:]:  # the second half's kept rows move down to follow the first half's
            for a in out:
                a[end : end + t[3] - t[2]] = a[t[2] : t[3]]
            end += t[3] - t[2]
        self.n_kept = end
        self.counts.append(kept)

    def _enter_parts(
        self, rec: NDArray[np.int64], starts: NDArray[np.int64], todo: list[list[int]], out: Any, kept: Any
    ) -> None:
        from voronka.analytics.events import _table

        attempts = self.q.count == "attempts"
        start_bits = K.STEP_BITS if self.q.mode == "any" else 1  # in mode any an attempt starts at any step

        def run(t: list[int]) -> None:
            if t[0] >= 0:
                args = (self.table, out, kept, attempts, start_bits)
                t[0], t[1], t[3] = _table.ingest(rec, starts, t[0], t[4], t[1], t[3], *args)

        pending = [t for t in todo if t[0] >= 0]
        if len(pending) < 2:
            for t in pending:
                run(t)
            return
        _on_two_threads(run, (pending[0],), (pending[1],))

    def _grow(self) -> None:
        from voronka.analytics.events import _table

        assert self.table is not None
        self.table = _table.grow(self.table, _table.new_slots(2 * len(self.table[0])))  # every bucket doubles

    def units(self) -> Units:
        """Walk every entity (or attempt) of the rows entered so far."""
        from voronka.analytics.events import _kernel

        q = self.q
        n = len(q.step_list)
        if self.table is None:
            self.add(*(np.zeros(0, dt) for dt in _DTYPES))
        assert self.table is not None
        assert self.cols is not None
        cols = [c[: self.n_kept] for c in self.cols]
        self.cols = None
        self.scratch = None
        counts = np.array(self.counts, np.int64).reshape(len(self.counts), -1)
        boffs = np.zeros((len(counts), counts.shape[1] + 1), np.int64)  # batch k, bucket b: where its rows start
        boffs[:, 1:] = np.cumsum(counts.ravel()).reshape(counts.shape)
        boffs[1:, 0] = boffs[:-1, -1]
        unit_offs = np.r_[0, np.cumsum(self.table[2])].astype(np.int64)
        total = int(unit_offs[-1])
        out = (
            np.empty(total, np.int64),
            np.empty(total, np.int8),
            np.empty(total, np.int32),
            np.empty((total, n), np.int64),
        )
        first_only = sum(1 << k for k, s in enumerate(q.step_list) if s.first_time)
        attribution = {"first_touch": K.FIRST, "last_touch": K.LAST, "step": K.AT_STEP}[q.attribution]
        attr_step = (q.attribution_step or 1) - 1
        attempts = q.count == "attempts"
        args = (*cols, boffs, self.table, unit_offs, n, kernel_params(q), first_only, attempts, attribution, attr_step)
        # Kept rows before each bucket: two threads walk the buckets of about half the rows each (the kernel
        # releases the GIL).
        parts = _parts(np.r_[0, np.cumsum(np.diff(boffs, axis=1).sum(axis=0))], self.threads)
        if len(parts) == 1:
            _kernel.funnel(*args, out, *parts[0])
        else:
            _on_two_threads(_kernel.funnel, (*args, out, *parts[0]), (*args, out, *parts[1]))
        return Units(*out)


def _parts(starts: NDArray[np.int64], threads: int) -> list[tuple[int, int]]:
    """The buckets (``starts[b]``: the rows before bucket b) as one range, or, with two threads and rows enough,
    two ranges of about half the rows each."""
    nb, n = len(starts) - 1, int(starts[-1])
    half = int(np.searchsorted(starts, n // 2)) if threads > 1 and n >= _PARALLEL_ROWS else nb
    return [(0, half), (half, nb)] if 0 < half < nb else [(0, nb)]


def _on_two_threads(fn: Any, here: tuple[Any, ...], there: tuple[Any, ...]) -> None:
    """``fn(*here)`` on this thread while ``fn(*there)`` runs on another; an exception on either is raised here
    (after both have stopped)."""
    with ThreadPoolExecutor(1, thread_name_prefix="voronka-events") as pool:
        other = pool.submit(fn, *there)
        fn(*here)
        other.result()


def validate_engine(engine: str) -> None:
    if engine not in ("inprocess", "clickhouse"):
        raise FunnelQueryError("engine.unknown", f"Engine {engine!r} is unknown: use inprocess or clickhouse.")
