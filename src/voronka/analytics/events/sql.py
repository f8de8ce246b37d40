"""Step conditions and time parsing as SQL, in the DuckDB and ClickHouse dialects.

Dialect differences are data (:class:`Dialect`), not scattered ifs. Both engines compile the same
:class:`~voronka.analytics.events.query.FunnelQuery` into one *row mask* per event row (see ``_kernel``):
step bits, the in-range bit, the tracked bit, exclusion bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from voronka.analytics.events._bits import EXCL_SHIFT, IN_RANGE, TRACKED
from voronka.analytics.events.query import FunnelQuery, Step, Where, to_micros

INT_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "HUGEINT")
CH_INT_TYPES = ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64")


@dataclass(frozen=True)
class Dialect:
    name: str
    quote: str
    contains: str  # format with {col}, {val}
    int_types: tuple[str, ...]
    to_bigint: str  # format with {x}

    def ident(self, name: str) -> str:
        q = self.quote
        return q + name.replace(q, q + q) + q


DUCKDB = Dialect("duckdb", '"', "contains(CAST({col} AS VARCHAR), {val})", INT_TYPES, "CAST({x} AS BIGINT)")
CLICKHOUSE = Dialect("clickhouse", "`", "(position(toString({col}), {val}) > 0)", CH_INT_TYPES, "toInt64({x})")


def base_type(t: str) -> str:
    """``Nullable(Int64)`` → ``Int64``; ``LowCardinality(String)`` → ``String``; DuckDB names are unchanged."""
    for wrap in ("Nullable(", "LowCardinality("):
        while t.startswith(wrap):
            t = t[len(wrap) : -1]
    return t


def is_int(dialect: Dialect, sql_type: str) -> bool:
    return base_type(sql_type) in dialect.int_types


def is_numeric(sql_type: str) -> bool:
    t = base_type(sql_type).upper()
    return any(k in t for k in ("INT", "FLOAT", "DOUBLE", "DECIMAL", "REAL"))


def literal(value: Any, numeric_column: bool) -> str:
    """A SQL literal; a number-looking value against a numeric column is written as a number."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
        return repr(value)
    text = str(value)
    if numeric_column:
        try:
            return repr(int(text))
        except ValueError:
            try:
                return repr(float(text))
            except ValueError:
                pass
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def where_sql(d: Dialect, w: Where, types: dict[str, str]) -> str:
    col = d.ident(w.column)
    num = is_numeric(types.get(w.column, ""))
    if w.op in ("in", "not in"):
        vals = ", ".join(literal(v, num) for v in w.value)
        return f"({col} {w.op.upper()} ({vals}))"
    if w.op == "contains":
        return d.contains.format(col=col, val=literal(str(w.value), False))
    return f"({col} {w.op} {literal(w.value, num)})"


def step_sql(d: Dialect, s: Step, event: str, types: dict[str, str]) -> str:
    parts = [] if s.event is None else [where_sql(d, Where(event, "=", s.event), types)]
    parts += [where_sql(d, w, types) for w in s.where]
    return "(" + " AND ".join(parts) + ")"


def time_us_sql(d: Dialect, col: str, sql_type: str) -> str:
    """Microseconds since the epoch (UTC) from a timestamp, a date, epoch seconds / milliseconds, or text.

    Numbers: below 1e11 they are seconds, below 1e14 milliseconds, else microseconds. Text: ISO 8601 with or
    without a zone (no zone = UTC), a trailing `` UTC``, or such a number.
    """
    c = d.ident(col)
    t = base_type(sql_type)
    tu = t.upper()
    if d is DUCKDB:
        if tu.startswith("TIMESTAMP") or tu == "DATE":
            return f"epoch_us(CAST({c} AS TIMESTAMPTZ))"
        if is_numeric(t):
            return _scaled(f"CAST({c} AS DOUBLE)", d) if "INT" not in tu else _scaled(c, d)
        num = f"TRY_CAST({c} AS DOUBLE)"
        iso = f"epoch_us(TRY_CAST(regexp_replace(trim(CAST({c} AS VARCHAR)), ' ?UTC$', '+00:00') AS TIMESTAMPTZ))"
        return f"COALESCE({_scaled(num, d)}, {iso})"
    if t.startswith("DateTime64"):
        return f"toUnixTimestamp64Micro({c})"
    if t.startswith("DateTime") or t.startswith("Date"):
        return f"(toInt64(toUnixTimestamp({c})) * 1000000)"
    if is_numeric(t):
        return _scaled(f"toFloat64({c})" if "Int" not in t else f"toInt64({c})", d)
    text = f"replaceRegexpOne(trim(toString({c})), ' ?UTC$', 'Z')"
    iso = f"toUnixTimestamp64Micro(parseDateTime64BestEffortOrNull({text}, 6, 'UTC'))"
    return f"coalesce({_scaled(f'toFloat64OrNull(toString({c}))', d)}, {iso})"


def _scaled(x: str, d: Dialect) -> str:
    big = d.to_bigint
    return (
        f"(CASE WHEN abs({x}) < 100000000000 THEN {big.format(x=f'round({x} * 1000000)')} "
        f"WHEN abs({x}) < 100000000000000 THEN {big.format(x=f'round({x} * 1000)')} "
        f"ELSE {big.format(x=x)} END)"
    )


def mask_sql(d: Dialect, q: FunnelQuery, event: str, types: dict[str, str], t: str) -> str:
    """The row mask: the sum of the bits the row sets (bits are distinct, so the sum is their OR)."""
    terms: list[str] = []
    by_name: dict[str, int] = {}
    for k, s in enumerate(q.step_list):
        if s.event is not None and not s.where:
            by_name[s.event] = by_name.get(s.event, 0) | (1 << k)
        else:
            terms.append(f"(CASE WHEN {step_sql(d, s, event, types)} THEN {1 << k} ELSE 0 END)")
    if by_name:
        num = is_numeric(types.get(event, ""))
        whens = " ".join(f"WHEN {literal(n, num)} THEN {bits}" for n, bits in by_name.items())
        terms.append(f"(CASE {d.ident(event)} {whens} ELSE 0 END)")
    for i, e in enumerate(q.exclusion_list):
        terms.append(f"(CASE WHEN {step_sql(d, e.step, event, types)} THEN {1 << (EXCL_SHIFT + i)} ELSE 0 END)")
    terms.append(f"(CASE WHEN {range_sql(q, t)} THEN {IN_RANGE} ELSE 0 END)")
    terms.append(str(TRACKED))
    return " + ".join(terms)


def range_sql(q: FunnelQuery, t: str) -> str:
    parts: list[str] = []
    if q.start is not None:
        parts.append(f"{t} >= {to_micros(q.start)}")
    if q.end is not None:
        parts.append(f"{t} < {to_micros(q.end)}")
    return " AND ".join(parts) or "TRUE"


def prune_sql(d: Dialect, q: FunnelQuery, event: str, types: dict[str, str], t: str) -> str:
    """Rows that can matter: step or exclusion rows (every row in strict mode) within the reachable time span."""
    parts: list[str] = []
    if q.mode == "strict":
        if q.tracked is not None:
            num = is_numeric(types.get(event, ""))
            names = [*q.tracked, *(s.event for s in q.step_list if s.event), *(e.step.event for e in q.exclusion_list)]
            vals = ", ".join(dict.fromkeys(literal(v, num) for v in names if v is not None))
            steps = [step_sql(d, s, event, types) for s in (*q.step_list, *(e.step for e in q.exclusion_list))]
            parts.append("(" + " OR ".join([f"{d.ident(event)} IN ({vals})", *steps]) + ")")
    else:
        conds = [step_sql(d, s, event, types) for s in q.step_list]
        conds += [step_sql(d, e.step, event, types) for e in q.exclusion_list]
        parts.append("(" + " OR ".join(conds) + ")")
    first_time = any(s.first_time for s in q.step_list)
    if q.start is not None and not first_time:
        parts.append(f"{t} >= {to_micros(q.start)}")
    if q.end is not None:
        limit = to_micros(q.end) if q.after_range == "clip" else to_micros(q.end) + q.window_us
        parts.append(f"{t} {'<' if q.after_range == 'clip' else '<='} {limit}")
    return " AND ".join(parts) or "TRUE"
