"""The in-process engine: DuckDB reads only the needed columns and prunes rows that match no step; a compiled Numba
pass partitions the rows by entity (no global sort), orders each bucket and walks each entity once, on all cores.
"""

from __future__ import annotations

import threading
from typing import Any

import duckdb
import numpy as np
from numpy.typing import NDArray

from voronka.analytics.events import _bits as K
from voronka.analytics.events.query import FunnelQuery, FunnelQueryError, _us
from voronka.analytics.events.result import FunnelResult, Units, build_result
from voronka.analytics.events.source import EventSource, _is_store, check_columns, column_types, relation_sql
from voronka.analytics.events.sql import DUCKDB, is_int, is_numeric, mask_sql, prune_sql, time_us_sql
from voronka.analytics.events.stages import crm_union_sql

_SMALL_INT_RANGE = 1 << 16
_PACK_BITS = 10
_PACK = 1 << _PACK_BITS  # times below 2**53 µs (year 2255) leave room for 10 bits of code


def run_inprocess(source: EventSource, q: FunnelQuery, *, threads: int | None = None) -> FunnelResult:
    """Compute the funnel ``q`` over ``source`` in this process."""
    box: dict[str, Any] = {}

    def load() -> None:
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET preserve_insertion_order = false")
            if threads:
                con.execute(f"SET threads = {int(threads)}")
            box["rows"] = _load_rows(con, source, q)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc
        finally:
            con.close()

    # DuckDB scans without the GIL while this thread loads the compiled kernels (start-up costs about a second).
    reader = threading.Thread(target=load, name="voronka-events-scan")
    reader.start()
    _warm_up(q)
    reader.join()
    if "error" in box:
        raise box["error"]
    rows, entity_labels, labels = box.pop("rows")
    units = compute_units(q, rows)
    if entity_labels is not None:
        units.entity = entity_labels[units.entity]
    return build_result(q, units, labels, "inprocess")


def _load_rows(
    con: duckdb.DuckDBPyConnection, source: EventSource, q: FunnelQuery
) -> tuple[list[NDArray[Any]], NDArray[Any] | None, NDArray[Any] | None]:
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
    not_stage = ""
    if q.stage_steps:
        if source.crm is None and not _is_store(source.data):
            raise FunnelQueryError("stages.workspace", "CRM stage steps need a workspace: pass EventSource(crm=ws).")
        inner = crm_union_sql(con, source, q, inner, d.ident)
        not_stage = " AND NOT voronka_stage"
    base = f"{inner} AS base{joins}"
    tt = "voronka_t"
    mask = mask_sql(d, q, source.event, types, tt)
    where = f"{key} IS NOT NULL AND {tt} IS NOT NULL AND " + prune_sql(d, q, source.event, types, tt)
    sql = (
        f"SELECT {key} AS e, {tt} AS t, CAST({mask} AS INTEGER) AS m, CAST({code} AS INTEGER) AS c "
        f"FROM {base} WHERE {where}"
    )
    if q.by is not None and q.attribution == "first_touch" and labels is not None and len(labels) < _PACK:
        # min of (time, code) packed in one BIGINT: a plain min aggregates faster than arg_min.
        packed = f"{tt} * {_PACK} + ({code}) + 1"
        sql += (
            f" UNION ALL SELECT e, (k >> {_PACK_BITS}) AS t, {K.FIRST_TOUCH} AS m, "
            f"CAST((k & {_PACK - 1}) - 1 AS INTEGER) AS c FROM (SELECT {key} AS e, min({packed}) AS k "
            f"FROM {base} WHERE {key} IS NOT NULL AND {tt} IS NOT NULL{not_stage} GROUP BY 1)"
        )
    elif q.by is not None and q.attribution == "first_touch":
        sql += (
            f" UNION ALL SELECT {key} AS e, min({tt}) AS t, {K.FIRST_TOUCH} AS m, "
            f"CAST(arg_min({code}, ({tt}, {code})) AS INTEGER) AS c FROM {base} "
            f"WHERE {key} IS NOT NULL AND {tt} IS NOT NULL{not_stage} GROUP BY 1"
        )
    got = con.execute(sql).fetchnumpy()
    rows = [np.ascontiguousarray(np.asarray(got.pop(k)), dtype=dt) for k, dt in zip("etmc", _DTYPES, strict=True)]
    return rows, entity_labels, labels


_DTYPES = (np.int64, np.int64, np.int32, np.int32)


def _check_times(con: duckdb.DuckDBPyConnection, rel: str, col: str, t: str, sql_type: str) -> None:
    """Text times must all parse; the first that does not is shown."""
    if is_numeric(sql_type) or sql_type.upper().startswith(("TIMESTAMP", "DATE")):
        return
    c = DUCKDB.ident(col)
    bad = con.execute(f"SELECT {c} FROM {rel} WHERE {c} IS NOT NULL AND {t} IS NULL LIMIT 1").fetchone()
    if bad is not None:
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
        lo, hi = con.execute(f"SELECT min({c}), max({c}) FROM {rel}").fetchone() or (None, None)
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
    one = np.zeros(1, np.int64)
    compute_units(q, [one, one, np.zeros(1, np.int32), np.zeros(1, np.int32)])


def compute_units(q: FunnelQuery, rows: list[NDArray[Any]]) -> Units:
    """Run the compiled pass over rows [entity key, time µs, mask, breakdown code] and return the units.

    The list is emptied: the input arrays are freed as soon as their partitioned copies exist (peak memory).
    """
    from voronka.analytics.events import _kernel

    ent, ts, mask, code = rows
    rows.clear()
    n = len(q.step_list)
    bits = int(np.clip(np.ceil(np.log2(max(len(ent), 1) / 32_768)), 0, 12))
    ent, ts, mask, code, starts = _kernel.partition(ent, ts, mask, code, bits)
    attempts = q.count == "attempts"
    per_bucket = _kernel.sort_buckets(ent, ts, mask, code, starts, attempts)
    offs = np.r_[0, np.cumsum(per_bucket)].astype(np.int64)
    total = int(offs[-1])
    out = (
        np.empty(total, np.int64),
        np.empty(total, np.int8),
        np.empty(total, np.int32),
        np.empty((total, n), np.int64),
    )
    first_only = sum(1 << k for k, s in enumerate(q.step_list) if s.first_time)
    attribution = {"first_touch": K.FIRST, "last_touch": K.LAST, "step": K.AT_STEP}[q.attribution]
    attr_step = (q.attribution_step or 1) - 1
    _kernel.walk(
        ent, ts, mask, code, starts, offs, n, kernel_params(q), first_only, attempts, attribution, attr_step, out
    )
    return Units(*out)


def validate_engine(engine: str) -> None:
    if engine not in ("inprocess", "clickhouse"):
        raise FunnelQueryError("engine.unknown", f"Engine {engine!r} is unknown: use inprocess or clickhouse.")
