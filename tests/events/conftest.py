"""The CLI fixture for event-funnel tests (the same runner as tests/cli)."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Run, runner_for


@pytest.fixture
def cli(sqlite_url: str) -> Run:
    return runner_for(sqlite_url)
