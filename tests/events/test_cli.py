"""`voronka events funnel` through the CLI runner: table, JSON, CSV, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tests.cli.conftest import Run
from tests.events.journeys import log_of


def _log(tmp_path: Path) -> Path:
    log = log_of(
        {
            1: [(0, "view", {"ch": "ads"}), (60, "cart", {"ch": "ads"}), (120, "buy", {"ch": "ads"})],
            2: [(0, "view", {"ch": "seo"}), (30, "cart", {"ch": "seo"})],
            3: [(0, "view", {"ch": "seo"})],
        }
    )
    path = tmp_path / "log.parquet"
    log.to_parquet(path)
    return path


def test_table(cli: Run, tmp_path: Path) -> None:
    out = cli("events", "funnel", str(_log(tmp_path)), "--steps", "view,cart,buy", "--window", "1h").output
    assert "3 entities entered" in out and "66.7%" in out and "Wilson" in out


def test_json_shape(cli: Run, tmp_path: Path) -> None:
    args = ["events", "funnel", str(_log(tmp_path)), "--steps", "view,cart,buy", "--by", "ch", "-f", "json"]
    data = json.loads(cli(*args).output)
    keys = {"name", "entities", "conversion", "conversion_from_start", "ci_low", "ci_high"}
    keys |= {"median_seconds_from_previous", "p90_seconds_from_previous"}
    assert keys <= set(data["steps"][0])
    assert [s["entities"] for s in data["steps"]] == [3, 2, 1]
    assert {g["value"]: [s["entities"] for s in g["steps"]] for g in data["breakdown"]} == {
        "seo": [2, 1, 0],
        "ads": [1, 1, 1],
    }
    assert data["steps"][1]["median_seconds_from_previous"] == 45


def test_csv_and_clickhouse_engine(cli: Run, tmp_path: Path) -> None:
    path = str(_log(tmp_path))
    a = cli("events", "funnel", path, "--steps", "view,cart", "-f", "csv").output
    b = cli("events", "funnel", path, "--steps", "view,cart", "-f", "csv", "--engine", "clickhouse").output
    assert a == b and "view" in a


def test_options(cli: Run, tmp_path: Path) -> None:
    path = str(_log(tmp_path))
    args = ["events", "funnel", path, "--steps", "view,cart", "-f", "json"]
    strict = json.loads(cli(*args, "--mode", "strict").output)
    assert [s["entities"] for s in strict["steps"]] == [3, 2]
    args2 = ["events", "funnel", path, "--steps", "view,buy", "-f", "json", "--exclude", "cart"]
    removed = json.loads(cli(*args2, "--exclusion-policy", "remove").output)
    assert [s["entities"] for s in removed["steps"]] == [1, 0] and removed["removed"] == 2
    ranged = json.loads(cli(*args, "--from", "2026-01-02", "--to", "2026-01-03").output)
    assert [s["entities"] for s in ranged["steps"]] == [0, 0]


def test_workspace_source(cli: Run, tmp_path: Path) -> None:
    csv = tmp_path / "ev.csv"
    pd.DataFrame({"user": [1, 1], "time": ["2026-01-01", "2026-01-01T00:05"], "event": ["view", "cart"]}).to_csv(
        csv, index=False
    )
    cli("import", "events", str(csv), "--entity", "user")
    data = json.loads(cli("events", "funnel", "workspace", "--steps", "view,cart", "-f", "json").output)
    assert [s["entities"] for s in data["steps"]] == [1, 1]


def test_errors(cli: Run, tmp_path: Path) -> None:
    path = str(_log(tmp_path))
    r = cli("events", "funnel", path, "--steps", "view", "--window", "soon", code=1)
    assert r.output.startswith("Error: --window 'soon' is not a duration")
    r = cli("events", "funnel", path, "--steps", "view", "--entity", "user", code=1)
    assert "Column 'user' (--entity) is not in" in r.output
    r = cli("events", "funnel", path, "--steps", "view", "--mode", "loose", code=1)
    assert "[mode.unknown]" in r.output
    r = cli("events", "funnel", path, "--steps", "view", "--clickhouse-url", "http://x:8123", code=1)
    assert "[engine.url]" in r.output


def test_clickhouse_server_unreachable(cli: Run) -> None:
    args = ["events", "funnel", "default.events", "--steps", "view", "--engine", "clickhouse"]
    r = cli(*args, "--clickhouse-url", "http://127.0.0.1:1", code=1)
    assert (
        r.output.startswith("Error: Cannot reach ClickHouse at 'http://127.0.0.1:1'") and "[engine.connect]" in r.output
    )
