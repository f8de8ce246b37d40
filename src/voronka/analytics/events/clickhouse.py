"""The ClickHouse engine: the same :class:`FunnelQuery` compiled to ClickHouse SQL.

Two compilations:

- :func:`window_funnel_sql` — ClickHouse's own ``windowFunnel``, for queries where it gives the same answer:
  ordered mode, counting entities, one window, no exclusions, no per-step windows or gaps, no first-time steps,
  and steps that no single row can match twice (plain, distinct event names). It returns levels only.
- :func:`funnel_sql` — the engine proper: each entity's rows are sorted into an array and walked by ``arrayFold``
  with the in-process kernel's rules (latest entry, one row one step per attempt, strict order, exclusions,
  per-step windows and gaps, date range, attribution), returning the same *units* as the in-process engine, which
  :func:`~voronka.analytics.events.result.build_result` turns into the same numbers.

Not expressible here (the engine refuses them with code ``engine.unsupported``): mode ``any``, counting attempts,
first-time-only steps.

Runs on chDB (embedded ClickHouse; the source is a Parquet / CSV file or a DataFrame) or, with a URL, on a
ClickHouse server through ``clickhouse-connect`` (the source is a table there).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from voronka.analytics.events._bits import EXCL_SHIFT, MISSING
from voronka.analytics.events.query import FunnelQuery, FunnelQueryError, _us
from voronka.analytics.events.result import FunnelResult, Units, build_result
from voronka.analytics.events.source import PARQUET, EventSource, check_columns, workspace_events_frame
from voronka.analytics.events.sql import CLICKHOUSE, mask_sql, prune_sql, time_us_sql

D = CLICKHOUSE
SETTINGS = "SETTINGS session_timezone = 'UTC'"


def unsupported(q: FunnelQuery) -> list[str]:
    """The options of ``q`` this engine cannot express (empty when it can run ``q``)."""
    out = []
    if q.mode == "any":
        out.append("mode any")
    if q.count == "attempts":
        out.append("counting attempts")
    if any(s.first_time for s in q.step_list):
        out.append("first-time-only steps")
    if q.stage_steps:
        out.append("CRM stage steps")
    return out


def window_funnel_equal(q: FunnelQuery) -> bool:
    """Whether ``windowFunnel`` gives this query's step counts (see the module docstring)."""
    names = [s.event for s in q.step_list]
    plain = all(s.event is not None and not s.where and s.within is None and s.min_gap is None for s in q.step_list)
    return (
        q.mode == "ordered"
        and q.count == "entities"
        and not q.exclusion_list
        and plain
        and len(set(names)) == len(names)
        and not any(s.first_time for s in q.step_list)
    )


class _Runner:
    """chDB in this process, or a ClickHouse server through clickhouse-connect."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.client: Any = None
        if url:
            try:
                import clickhouse_connect
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise FunnelQueryError(
                    "engine.missing",
                    "The ClickHouse engine needs clickhouse-connect: pip install 'voronka[clickhouse]'.",
                ) from exc
            try:
                self.client = clickhouse_connect.get_client(dsn=url)
            except Exception as exc:  # the driver's errors have no common base worth naming
                raise FunnelQueryError(
                    "engine.connect", f"Cannot reach ClickHouse at {url!r}: {exc}. Check --clickhouse-url."
                ) from exc

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r.values()) for r in self.arrow(sql).to_pylist()]

    def arrow(self, sql: str) -> Any:
        try:
            return self._arrow(sql)
        except FunnelQueryError:
            raise
        except Exception as exc:  # chDB raises RuntimeError, clickhouse-connect its own errors
            where = self.url or "chDB"
            raise FunnelQueryError("engine.clickhouse", f"ClickHouse ({where}) refused the query: {exc}") from exc

    def _arrow(self, sql: str) -> Any:
        if self.client is not None:
            return self.client.query_arrow(sql)
        try:
            import chdb
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise FunnelQueryError(
                "engine.missing", "The embedded ClickHouse engine needs chDB: pip install 'voronka[clickhouse]'."
            ) from exc
        return chdb.query(sql, "ArrowTable")


def relation(source: EventSource, url: str | None) -> str:
    """A ClickHouse FROM expression for the source."""
    data = source.data
    if url:
        return ".".join(D.ident(p) for p in str(data).split("."))
    store = __import__("sys").modules.get("voronka.store.workspace")
    if store is not None and isinstance(data, store.WorkspaceStore):
        data = workspace_events_frame(data)
    pandas = __import__("sys").modules.get("pandas")
    if pandas is not None and isinstance(data, pandas.DataFrame):
        data = _frame_file(data)
    text = str(data)
    fmt = "Parquet" if text.lower().endswith(PARQUET) else "CSVWithNames"
    return f"file('{text.replace(chr(39), chr(39) * 2)}', {fmt})"


def _frame_file(frame: Any) -> str:
    """An in-memory log goes to chDB as a temporary Parquet file (removed at exit)."""
    import atexit
    import os
    import tempfile

    fd, path = tempfile.mkstemp(suffix=".parquet", prefix="voronka-events-")
    os.close(fd)
    atexit.register(lambda: os.path.exists(path) and os.remove(path))
    frame.to_parquet(path, index=False)
    return path


def column_types(runner: _Runner, rel: str) -> dict[str, str]:
    return {r[0]: r[1] for r in runner.rows(f"DESCRIBE TABLE {rel} {SETTINGS}")}


def _lowest(m: str) -> str:
    x = f"bitAnd({m}, 65535)"
    return f"if({x} = 0, 16, bitCount(bitXor({x}, {x} - 1)) - 1)"


def _fold(q: FunnelQuery) -> str:
    """``arrayFold`` over one entity's sorted rows ``evs`` of (t, order, mask, code): the latest-entry walk."""
    n = len(q.step_list)
    w = q.window_us
    within = "[" + ", ".join(str(-1 if s.within is None else _us(s.within)) for s in q.step_list) + "]"
    gap = "[" + ", ".join(str(0 if s.min_gap is None else _us(s.min_gap)) for s in q.step_list) + "]"
    strict = 1 if q.mode == "strict" else 0
    rng = f"range(1, {n + 1})"
    t, m, c = "x.1", "x.3", "x.4"
    ext = (
        f"bitTest({m}, k - 1) AND a.1[k - 1] = 1 AND {t} - a.2[k - 1] <= {w} "
        f"AND {t} - a.3[k - 1] >= arrayElement(CAST({gap}, 'Array(Int64)'), k) "
        f"AND (arrayElement(CAST({within}, 'Array(Int64)'), k) < 0 "
        f"OR {t} - a.3[k - 1] <= arrayElement(CAST({within}, 'Array(Int64)'), k))"
    )
    upd = f"arrayMap(k -> toUInt8(if(k = 1, bitTest({m}, 0) AND bitTest({m}, 16), {ext})), {rng})"
    hits = [
        f"(bitTest({m}, {EXCL_SHIFT + i}) AND r >= {e.after} AND r < {n if e.before is None else e.before})"
        for i, e in enumerate(q.exclusion_list)
    ]
    hit = " OR ".join(hits) or "0"
    v1 = f"arrayMap((u, v) -> toUInt8(if(u = 1, 1, if({strict} = 1, 0, v))), {upd}, a.1)"
    # reach: steps reached by the attempt held at each level (an exclusion spares attempts past its range)
    same = "u = 1 AND k - 1 >= j AND a.1[j] = 1 AND a.2[j] = a.2[k - 1]"
    spread = f"arrayMax(arrayMap((k, u) -> if({same}, k, 0), {rng}, {upd}))"
    reach = f"arrayMap((j, u, r) -> toUInt8(if(u = 1, j, greatest(r, {spread}))), {rng}, {upd}, a.10)"
    v2 = f"arrayMap((v, r) -> toUInt8(v = 1 AND NOT ({hit})), {v1}, {reach})"
    remove = 1 if q.exclusion_policy == "remove" else 0
    removed = f"toUInt8(a.9 = 1 OR ({remove} = 1 AND arrayExists((v, r) -> v = 1 AND ({hit}), {v1}, {reach})))"
    first = f"arrayMap((k, u, f) -> if(u = 1, if(k = 1, {t}, a.2[k - 1]), f), {rng}, {upd}, a.2)"
    last = f"arrayMap((u, l) -> if(u = 1, {t}, l), {upd}, a.3)"
    path = (
        f"arrayMap((k, u, p) -> if(u = 1, arrayPushBack(arraySlice(a.4[k - 1], 1, k - 1), {t}), p), {rng}, {upd}, a.4)"
    )
    pcode = (
        f"arrayMap((k, u, p) -> if(u = 1, arrayPushBack(arraySlice(a.5[k - 1], 1, k - 1), {c}), p), {rng}, {upd}, a.5)"
    )
    nb = f"toUInt8(arrayMax(arrayMap((k, u) -> if(u = 1, k, 0), {rng}, {upd})))"
    best_t = f"if({nb} > a.6, arrayPushBack(arraySlice(a.4[{nb} - 1], 1, {nb} - 1), {t}), a.7)"
    best_c = f"if({nb} > a.6, arrayPushBack(arraySlice(a.5[{nb} - 1], 1, {nb} - 1), {c}), a.8)"
    body = (
        f"tuple(CAST({v2}, 'Array(UInt8)'), CAST({first}, 'Array(Int64)'), CAST({last}, 'Array(Int64)'), "
        f"CAST({path}, 'Array(Array(Int64))'), CAST({pcode}, 'Array(Array(Int32))'), toUInt8(greatest(a.6, {nb})), "
        f"CAST({best_t}, 'Array(Int64)'), CAST({best_c}, 'Array(Int32)'), {removed}, CAST({reach}, 'Array(UInt8)'))"
    )
    init = (
        f"tuple(CAST(arrayWithConstant({n}, 0), 'Array(UInt8)'), CAST(arrayWithConstant({n}, 0), 'Array(Int64)'), "
        f"CAST(arrayWithConstant({n}, 0), 'Array(Int64)'), CAST(arrayWithConstant({n}, []), 'Array(Array(Int64))'), "
        f"CAST(arrayWithConstant({n}, []), 'Array(Array(Int32))'), toUInt8(0), CAST([], 'Array(Int64)'), "
        f"CAST([], 'Array(Int32)'), toUInt8(0), CAST(arrayWithConstant({n}, 0), 'Array(UInt8)'))"
    )
    return f"arrayFold((a, x) -> {body}, evs, {init})"


def funnel_sql(q: FunnelQuery, source: EventSource, rel: str, types: dict[str, str]) -> str:
    """The units of ``q``: one row (e, level, code, times) per entity that started an attempt in range."""
    tt = "voronka_t"
    t = time_us_sql(D, source.time, types[source.time])
    mask = mask_sql(D, q, source.event, types, tt)
    keep = prune_sql(D, q, source.event, types, tt)
    if q.by is None:
        code, vals = "toInt32(0)", ""
    else:
        by = D.ident(q.by)
        vals = f"WITH (SELECT arraySort(groupUniqArray({by})) FROM {rel}) AS voronka_vals "
        code = f"toInt32(indexOf(voronka_vals, {by}) - 1)"
    e = D.ident(source.entity)
    n = len(q.step_list)
    attr = {
        "first_touch": "ft",
        "last_touch": "if(r.6 > 0, r.8[r.6], -1)",
        "step": f"if(r.6 >= {q.attribution_step or 1}, r.8[{q.attribution_step or 1}], -1)",
    }[q.attribution]
    return (
        f"{vals}SELECT e, if(r.9 = 1, -1, toInt8(r.6)) AS level, toInt32({attr}) AS code, "
        f"arrayResize(r.7, {n}, toInt64({MISSING})) AS times FROM ("
        f"SELECT e, ft, {_fold(q)} AS r FROM ("
        f"SELECT e, arraySort(groupArrayIf((t, {_lowest('m')}, m, c), keep)) AS evs, argMin(c, (t, c)) AS ft "
        f"FROM (SELECT {e} AS e, {tt} AS t, toInt64({mask}) AS m, {code} AS c, ({keep}) AS keep "
        f"FROM (SELECT *, {t} AS {tt} FROM {rel}) WHERE {e} IS NOT NULL AND {tt} IS NOT NULL) "
        f"GROUP BY e) WHERE length(evs) > 0) WHERE r.6 > 0 OR r.9 = 1 {SETTINGS}"
    )


def window_funnel_sql(q: FunnelQuery, source: EventSource, rel: str, types: dict[str, str]) -> str:
    """Entities per level with ClickHouse's ``windowFunnel`` (only valid when :func:`window_funnel_equal`)."""
    tt = time_us_sql(D, source.time, types[source.time])
    conds = ", ".join(f"{D.ident(source.event)} = {_lit(s.event, types[source.event])}" for s in q.step_list)
    start = []
    if q.start is not None or q.end is not None:
        raise FunnelQueryError("engine.unsupported", "windowFunnel has no date-range rule; use funnel_sql.")
    return (
        f"SELECT level, count() FROM (SELECT windowFunnel({q.window_us})(toUInt64({tt} - {_T0}), {conds}) AS level "
        f"FROM {rel} GROUP BY {D.ident(source.entity)}) WHERE level > 0 GROUP BY level ORDER BY level" + "".join(start)
    )


_T0 = -(2**62)  # windowFunnel refuses signed times: shift them to be non-negative


def _lit(value: Any, sql_type: str) -> str:
    from voronka.analytics.events.sql import is_numeric, literal

    return literal(value, is_numeric(sql_type))


def run_clickhouse(source: EventSource, q: FunnelQuery, *, url: str | None = None) -> FunnelResult:
    """Run ``q`` on ClickHouse (chDB when ``url`` is None) and build the same result as the in-process engine."""
    missing = unsupported(q)
    if missing:
        raise FunnelQueryError(
            "engine.unsupported",
            f"The ClickHouse engine cannot express {', '.join(missing)}; use --engine inprocess.",
        )
    runner = _Runner(url)
    rel = relation(source, url)
    types = column_types(runner, rel)
    check_columns(types, source, q)
    table = runner.arrow(funnel_sql(q, source, rel, types))
    labels = None
    if q.by is not None:
        vals = runner.rows(f"SELECT arraySort(groupUniqArray({D.ident(q.by)})) FROM {rel}")[0][0]
        labels = np.array([str(v) for v in vals], dtype=object)
    n = len(q.step_list)
    cols = {name: table.column(name) for name in ("e", "level", "code", "times")}
    times = np.array(cols["times"].to_pylist(), dtype=np.int64).reshape(-1, n)
    ent = cols["e"].to_numpy(zero_copy_only=False)
    if ent.dtype.kind not in "iu":
        ent = np.array([str(x) for x in ent], dtype=object)
    units = Units(
        ent,
        cols["level"].to_numpy().astype(np.int8),
        cols["code"].to_numpy().astype(np.int32),
        times,
    )
    return build_result(q, units, labels, "clickhouse")
