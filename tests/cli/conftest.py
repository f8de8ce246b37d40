"""The CLI through Typer's runner, on a fresh SQLite workspace file per test."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from tests.helpers import dump_url
from voronka.cli import _common
from voronka.cli.main import app

Run = Callable[..., Result]


def runner_for(url: str) -> Run:
    """``run("deal", "add", ...)`` runs ``voronka --db <url> deal add ...`` and checks the exit code."""
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> Result:
        result = runner.invoke(app, ["--db", url, *args])
        try:
            # A process would end here: close the invocation's workspace so that no connection outlives it.
            st = _common.state()
            if st._ws is not None:
                st._ws.close()
                st._ws = None
        except LookupError:  # the command never got as far as the root callback
            pass
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert result.exit_code == code, result.output
        return result

    return run


@pytest.fixture
def cli(sqlite_url: str) -> Run:
    return runner_for(sqlite_url)


@pytest.fixture
def tables(sqlite_url: str) -> Callable[[], dict[str, Any]]:
    """A dump of every table of the test's workspace, read through a connection of its own."""
    return lambda: dump_url(sqlite_url)
