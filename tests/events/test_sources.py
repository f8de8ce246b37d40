"""Sources: CSV and Parquet files, a DuckDB table, the workspace's events; every time format the CLI promises."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.events.journeys import T0, log_of
from voronka.analytics.events import EventSource, FunnelQuery, run_funnel
from voronka.io.events import import_events, read_events
from voronka.service.workspace import Workspace

Q = FunnelQuery(steps=("view", "cart"), window="1h")
ISO = ["2026-01-01T00:00:00", "2026-01-01 00:30:00.250"]


def _counts(source: EventSource, q: FunnelQuery = Q, engine: str = "inprocess") -> list[int]:
    return [s.entities for s in run_funnel(source, q, engine=engine).steps]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "times",
    [
        ["2026-01-01T00:00:00", "2026-01-01T00:59:59.999"],  # ISO, no zone = UTC, sub-second kept
        ["2026-01-01T03:00:00+03:00", "2026-01-01T00:30:00Z"],  # zones honoured
        ["2026-01-01 00:00:00 UTC", "2026-01-01 00:30:00 UTC"],  # REES46's trailing UTC
        [str(T0), str(T0 + 1800)],  # epoch seconds
        [str(T0 * 1000), str(T0 * 1000 + 1_800_000)],  # epoch milliseconds
    ],
)
@pytest.mark.parametrize("engine", ["inprocess", "clickhouse"])
def test_time_formats_in_csv(tmp_path: Path, times: list[str], engine: str) -> None:
    path = tmp_path / "log.csv"
    pd.DataFrame({"user": ["u1", "u1"], "at": times, "name": ["view", "cart"]}).to_csv(path, index=False)
    assert _counts(EventSource(str(path), entity="user", time="at", event="name"), engine=engine) == [1, 1]


def test_sub_second_order_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    times = ["2026-01-01T00:00:00.500", "2026-01-01T00:00:00.200"]  # the cart comes before the view
    pd.DataFrame({"entity": [1, 1], "time": times, "event": ["view", "cart"]}).to_csv(path, index=False)
    assert _counts(EventSource(str(path))) == [1, 0]


def test_parquet_with_timestamps_and_duckdb_table(tmp_path: Path) -> None:
    log = log_of({1: [(0, "view"), (60, "cart")], 2: [(0, "view")]})
    log["time"] = pd.to_datetime(log["time"], unit="s", utc=True)
    pq = tmp_path / "log.parquet"
    log.to_parquet(pq)
    assert _counts(EventSource(str(pq))) == [2, 1]
    assert _counts(EventSource(str(pq)), engine="clickhouse") == [2, 1]
    db = tmp_path / "log.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(f"CREATE TABLE ev AS SELECT * FROM read_parquet('{pq}')")
    assert _counts(EventSource(f"{db}:ev")) == [2, 1]


def test_workspace_events(sqlite_ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    rows = [
        ("s1", "2026-01-01 00:00:00 UTC", "view", "ads"),
        ("s1", "2026-01-01 00:10:00 UTC", "cart", "ads"),
        ("s2", "2026-01-01 00:00:00 UTC", "view", "seo"),
    ]
    pd.DataFrame(rows, columns=["session", "event_time", "event_type", "channel"]).to_csv(path, index=False)
    batch, events = read_events(path, source="web")
    import_events(sqlite_ws, batch, events)
    r = run_funnel(EventSource(sqlite_ws), FunnelQuery(steps=("view", "cart"), by="channel"))
    assert [s.entities for s in r.steps] == [2, 1]
    assert {g.value: g.steps[1].entities for g in r.breakdown} == {"ads": 1, "seo": 0}
    assert r.entity_ids(2) == ["s1"]
