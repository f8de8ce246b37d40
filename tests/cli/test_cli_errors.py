"""Every error of the CLI: exit code 1, one line on stderr that starts with "Error: " and names the bad value,
and the workspace exactly as it was."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from tests.cli.conftest import Run, runner_for
from tests.conftest import fresh_sqlite_url
from voronka.cli.main import app
from voronka.errors import NotFoundError


@pytest.fixture(scope="module")
def board_file(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with pipeline Sales, deal 1 in Call since Jan 5, deal 2 with external id A-1; built once."""
    url = fresh_sqlite_url(sqlite_template, tmp_path_factory.mktemp("board"))
    cli = runner_for(url)
    cli(
        "pipeline",
        "create",
        "Sales",
        "--stages",
        "Request,Call,Estimate,Contract",
        "--reasons",
        "Дорого,No budget",
    )
    cli("deal", "add", "--pipeline", "Sales", "--title", "First", "--at", "2026-01-01")
    cli("deal", "move", "1", "Call", "--at", "2026-01-05")
    cli(
        "deal",
        "add",
        "--pipeline",
        "Sales",
        "--title",
        "Second",
        "--at",
        "2026-01-02",
        "--external-id",
        "A-1",
    )
    path = Path(make_url(url).database or "")
    assert not path.with_name(path.name + "-wal").exists()  # every connection closed: all in the main file
    return path


@pytest.fixture
def board(board_file: Path, sqlite_url: str) -> None:
    """The test's own copy of the board, at the URL of the ``cli`` and ``tables`` fixtures."""
    shutil.copyfile(board_file, make_url(sqlite_url).database or "")


ADD = ("deal", "add", "--pipeline", "Sales", "--title", "New")

ERRORS = [
    # unknown pipeline
    (("deal", "add", "--pipeline", "Nope", "--title", "X"), "Unknown pipeline 'Nope'"),
    (("funnel", "Nope"), "Unknown pipeline 'Nope'"),
    (("stuck", "Nope"), "Unknown pipeline 'Nope'"),
    (("deal", "move", "1", "Offer", "--pipeline", "Nope", "--at", "2026-01-06"), "Unknown pipeline 'Nope'"),
    # unknown stage
    (
        ("deal", "move", "1", "Negotiation", "--at", "2026-01-06"),
        "Stage 'Negotiation' is not in pipeline 'Sales'",
    ),
    ((*ADD, "--stage", "Negotiation"), "Stage 'Negotiation' is not in pipeline 'Sales'"),
    (("pipeline", "sla", "Sales", "Negotiation", "2"), "Stage 'Negotiation'"),
    # lost without a reason, and other reason mistakes
    (("deal", "move", "1", "Lost", "--at", "2026-01-06"), "lost stage 'Lost' needs a loss reason"),
    (("deal", "move", "1", "Lost", "--at", "2026-01-06", "--reason", "Weather"), "Loss reason 'Weather'"),
    (("deal", "move", "1", "Estimate", "--at", "2026-01-06", "--reason", "Дорого"), "loss reason ('Дорого')"),
    # a time before the deal's last move (Jan 5)
    (
        ("deal", "move", "1", "Estimate", "--at", "2026-01-04T23:00"),
        "Time 2026-01-04T23:00:00Z is before the deal's last move at 2026-01-05T00:00:00Z",
    ),
    # malformed dates
    (("deal", "move", "1", "Estimate", "--at", "2026-13-45"), "Malformed --at time '2026-13-45'"),
    ((*ADD, "--at", "yesterday"), "Malformed --at time 'yesterday'"),
    (("funnel", "Sales", "--from", "1.2026"), "Malformed --from date '1.2026'"),
    (("funnel", "Sales", "--to", "soon"), "Malformed --to date 'soon'"),
    (("deal", "activity", "1", "--due", "tomorrow"), "Malformed --due time 'tomorrow'"),
    # malformed amounts and currencies
    ((*ADD, "--amount", "12abc"), "Malformed amount '12abc'"),
    ((*ADD, "--amount", "1.234,5.6"), "Malformed amount '1.234,5.6'"),
    ((*ADD, "--amount", "-5"), "Negative amount '-5'"),
    ((*ADD, "--currency", "RUBL"), "Malformed currency 'RUBL'"),
    # deals that are not there, or already there
    (("deal", "move", "99", "Call"), "No deal with id 99"),
    (("deal", "show", "99"), "No deal with id 99"),
    (("deal", "show", "--external-id", "B-9"), "No deal with external id 'B-9'"),
    (("deal", "show"), "Give a deal id or --external-id"),
    (("deal", "show", "1", "--external-id", "A-1"), "Give a deal id or --external-id"),
    ((*ADD, "--external-id", "A-1"), "external id 'A-1' already exists"),
    (("deal", "move", "1", "call", "--at", "2026-01-06"), "already in stage 'Call'"),
    (("deal", "activity", "1", "--kind", "fax"), "Unknown activity kind 'fax'"),
    (("deal", "activity", "99", "--kind", "call"), "No deal with id 99"),
    # report options
    (("funnel", "Sales", "--by", "city"), "Unknown breakdown 'city'"),
    (
        ("funnel", "Sales", "--from", "2026-03-01", "--to", "2026-02-01"),
        "--from 2026-03-01 is not before --to",
    ),
    # pipelines
    (("pipeline", "create", "Other", "--template", "kanban"), "Unknown template 'kanban'"),
    (("pipeline", "create", "SALES", "--stages", "A"), "A pipeline named 'SALES' already exists"),
    (("pipeline", "create", "Other"), "Give either the open stages"),
    (("pipeline", "create", "Other", "--stages", "A,a"), "Stage name 'a' is used twice"),
    (("pipeline", "create", "Other", "--stages", "A,B", "--sla", "1,x"), "Malformed SLA 'x' in --sla '1,x'"),
    (("pipeline", "create", "Other", "--stages", "A,B", "--sla", "1,-2"), "SLA -2.0 days"),
    (("pipeline", "create", "Other", "--stages", "A,B", "--sla", "1"), "Got 1 SLA values for 2 open stages"),
    (("pipeline", "create", "Other", "--stages", "A", "--process", "sales"), "Unknown process 'sales'"),
    (("pipeline", "sla", "Sales", "Call", "--", "-1"), "SLA -1.0 days"),
]


@pytest.mark.usefixtures("board")
@pytest.mark.parametrize(("args", "named"), ERRORS, ids=[" ".join(a) for a, _ in ERRORS])
def test_every_error_is_one_line_names_the_value_and_writes_nothing(
    cli: Run, tables: Callable[[], dict[str, Any]], args: tuple[str, ...], named: str
) -> None:
    before = tables()
    result = cli(*args, code=1)
    assert result.stdout == ""
    assert result.output.startswith("Error: ")
    assert result.stderr.startswith("Error: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert named in result.stderr
    assert tables() == before


def test_a_bad_database_url_is_an_error_too(tmp_path: Any) -> None:
    for url, named in (
        ("nosuchdb://x", "nosuchdb://x"),
        (f"sqlite:///{tmp_path}/no/such/dir/ws.db", "no/such/dir"),
    ):
        result = CliRunner().invoke(app, ["--db", url, "init"])
        assert result.exit_code == 1
        assert result.stderr.startswith("Error: The workspace database failed")
        assert named in result.stderr


@pytest.mark.usefixtures("board")
def test_debug_shows_the_exception_instead(sqlite_url: str) -> None:
    result = CliRunner().invoke(app, ["--db", sqlite_url, "--debug", "deal", "move", "99", "Call"])
    assert isinstance(result.exception, NotFoundError)
    assert "No deal with id 99" in str(result.exception)
