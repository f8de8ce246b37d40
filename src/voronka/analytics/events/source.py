"""Where events come from: a Parquet or CSV file, a DuckDB database table, a DataFrame, or a workspace's events.

An :class:`EventSource` names the relation and its entity, time and event columns; :func:`open_source` opens it
in DuckDB (read in place, only the columns a query needs) and checks the columns exist.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from voronka.analytics.events.query import FunnelQuery, FunnelQueryError

if TYPE_CHECKING:
    import pandas as pd

    from voronka.store.workspace import WorkspaceStore

PARQUET = (".parquet", ".pq")
CSV = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz")


@dataclass(frozen=True)
class EventSource:
    """A log of events: ``data`` is a path (``x.parquet``, ``x.csv``, ``x.duckdb:TABLE``), a DataFrame, or a
    workspace store (its ``events`` table, properties as columns); ``entity``, ``time``, ``event`` name columns."""

    data: Any
    entity: str = "entity"
    time: str = "time"
    event: str = "event"
    crm: Any = None  # the workspace whose deals feed CRM stage steps (default: ``data`` when it is a workspace)

    @property
    def label(self) -> str:
        return str(self.data) if isinstance(self.data, str | Path) else type(self.data).__name__


def workspace_events_frame(store: WorkspaceStore) -> pd.DataFrame:
    """The workspace's events as a DataFrame: entity, time (UTC), event, and one column per property."""
    import pandas as pd
    from sqlalchemy import select

    from voronka.store.schema import events

    with store._read() as conn:
        rows = conn.execute(select(events.c.entity, events.c.at, events.c.event, events.c.properties)).all()
    frame = pd.DataFrame(
        {
            "entity": [r.entity for r in rows],
            "time": pd.to_datetime([r.at for r in rows], utc=True).as_unit("us"),
            "event": [r.event for r in rows],
        }
    )
    props = pd.DataFrame.from_records([r.properties or {} for r in rows], index=frame.index)
    for col in props.columns:
        if col not in frame.columns:
            frame[col] = props[col]
    return frame


def relation_sql(con: duckdb.DuckDBPyConnection, source: EventSource) -> str:
    """A FROM-clause expression for the source in ``con`` (files are read in place)."""
    data = source.data
    if _is_store(data):
        data = workspace_events_frame(data)
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(data, pandas.DataFrame):
        con.register("voronka_events_frame", data)
        return "voronka_events_frame"
    text = str(data)
    lower = text.lower()
    if ":" in text and lower.split(":")[0].endswith((".duckdb", ".db")):
        db, table = text.rsplit(":", 1)
        _exists(db)
        con.execute(f"ATTACH {_str(db)} AS voronka_src (READ_ONLY)")
        return f"voronka_src.{_ident(table)}"
    _exists(text)
    if lower.endswith(PARQUET) or Path(text).is_dir():
        return f"read_parquet({_str(text)})"
    if lower.endswith(CSV):
        return f"read_csv({_str(text)}, header = true)"
    raise FunnelQueryError(
        "source.format", f"Cannot read {text!r}: give a .parquet, .csv or .tsv file, or DB.duckdb:TABLE."
    )


def _is_store(data: Any) -> bool:
    store = sys.modules.get("voronka.store.workspace")
    return store is not None and isinstance(data, store.WorkspaceStore)


def _exists(path: str) -> None:
    if not Path(path).exists():
        raise FunnelQueryError("source.missing", f"The events file {path!r} does not exist; check the path.")


def _str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def column_types(con: duckdb.DuckDBPyConnection, rel: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()}


def check_columns(types: dict[str, str], source: EventSource, q: FunnelQuery) -> None:
    """Every column the query names must be in the source."""
    needed = {"--entity": source.entity, "--time": source.time, "--event": source.event}
    if q.by:
        needed["--by"] = q.by
    if q.crm_key:
        needed["crm_key"] = q.crm_key
    for i, s in enumerate([*q.step_list, *(e.step for e in q.exclusion_list)], 1):
        for w in s.where:
            needed[f"step {i} predicate"] = w.column
    for what, col in needed.items():
        if col not in types:
            raise FunnelQueryError(
                "source.column",
                f"Column {col!r} ({what}) is not in {source.label}; its columns are: {', '.join(types)}.",
            )
