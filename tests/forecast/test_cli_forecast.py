"""`voronka forecast` and `voronka forecast backtest` through the runner."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from tests.cli.conftest import Run
from tests.forecast.conftest import small_pipeline
from tests.scenarios import build_scenario
from voronka.service.workspace import Workspace


@pytest.fixture
def sales(sqlite_url: str) -> None:
    w = Workspace.connect(sqlite_url)
    build_scenario(w, small_pipeline())
    w.close()


def test_forecast_table_json_csv(cli: Run, sales: None) -> None:
    table = cli("forecast", "Sales", "--as-of", "2026-04-01", "--paths", "500", "--target", "5 000").stdout
    assert "Forecast 'Sales'" in table and "SIMPLE model" in table
    assert "Chance to reach 5 000" in table
    data = json.loads(cli("forecast", "Sales", "--as-of", "2026-04-01", "--paths", "500", "-f", "json").stdout)
    assert [m["month"] for m in data["months"]] == [1, 2, 3]
    assert {"p10", "p50", "p90"} <= set(data["months"][0]["revenue"])
    frame = pd.read_csv(io.StringIO(cli("forecast", "Sales", "--paths", "500", "--by", "owner", "-f", "csv").stdout))
    assert set(frame["owner"]) == {"all", "Anna", "Boris"}
    assert {"month", "measure", "mean", "p10", "p50", "p90"} <= set(frame.columns)


def test_backtest_table_and_json(cli: Run, sales: None) -> None:
    out = cli("forecast", "backtest", "Sales", "--now", "2026-06-01", "--paths", "300").stdout
    assert "Backtest 'Sales'" in out and "WAPE naive" in out
    data = json.loads(
        cli("forecast", "backtest", "Sales", "--now", "2026-06-01", "--paths", "300", "-f", "json").stdout
    )
    keys = {"coverage_80", "coverage_50", "wape", "bias", "wape_naive", "wape_weighted_pipeline", "won_coverage_80"}
    assert keys <= set(data["summary"][0])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("forecast", "Nope"), "Unknown pipeline 'Nope'"),
        (("forecast", "Sales", "--months", "0"), "--months 0"),
        (("forecast", "Sales", "--by", "segment"), "Unknown breakdown 'segment'"),
        (("forecast", "Sales", "--paths", "5"), "--paths 5"),
        (("forecast", "Sales", "--target", "lots"), "lots"),
        (("forecast", "Sales", "--target", "-5"), "--target"),
        (("forecast", "Sales", "--as-of", "yesterday"), "yesterday"),
        (("forecast", "backtest", "Nope"), "Unknown pipeline 'Nope'"),
        (("forecast", "backtest", "Sales", "--hand", "0.1,x"), "--hand '0.1,x'"),
        (("forecast", "backtest", "Sales", "--hand", "0.5"), "one probability in [0, 1] per open stage"),
        (("forecast", "backtest", "Sales", "--now", "2026-02-01"), "too little history to backtest"),
    ],
)
def test_bad_input_is_one_error_line(cli: Run, sales: None, args: tuple[str, ...], message: str) -> None:
    result = cli(*args, code=1)
    assert result.stderr.startswith("Error: ")
    assert message in result.stderr
    assert result.stdout == ""
