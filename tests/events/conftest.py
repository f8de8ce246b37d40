"""The CLI fixture for event-funnel tests (the same runner as tests/cli), and the wait for compiled kernels."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator

import pytest

from tests.cli.conftest import Run, runner_for
from tests.events.warm import LOCK


@pytest.fixture(scope="session", autouse=True)
def _kernels_compiled() -> Iterator[None]:
    """Wait while tests/events/warm.py, started by the root conftest, compiles the kernels into Numba's cache."""
    if LOCK.exists():
        with LOCK.open() as f:
            fcntl.flock(f, fcntl.LOCK_SH)
            fcntl.flock(f, fcntl.LOCK_UN)
    yield


@pytest.fixture
def cli(sqlite_url: str) -> Run:
    return runner_for(sqlite_url)
