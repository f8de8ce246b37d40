"""Fixtures of the forecast tests: a small pipeline with a known history, in a workspace and through the CLI."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from tests.cli.conftest import Run, runner_for


def small_pipeline(deals: int = 30, start: date = date(2026, 1, 1)) -> dict[str, Any]:
    """``deals`` deals three days apart from ``start`` in Request → Call → Contract: every third one is lost at Call
    after 2 days, the others are won 5 days after the Call; the last four are still open."""
    items = []
    for i in range(deals):
        day = start + timedelta(days=3 * i)
        path: list[tuple[str, ...]] = [("Request", day.isoformat()), ("Call", (day + timedelta(days=1)).isoformat())]
        if i < deals - 4:
            if i % 3 == 0:
                path.append(("Lost", (day + timedelta(days=3)).isoformat(), "No budget"))
            else:
                path.append(("Won", (day + timedelta(days=6)).isoformat()))
        items.append({"owner": "Anna" if i % 2 else "Boris", "source": "web", "amount": "1000", "path": path})
    return {
        "pipeline": {"name": "Sales", "stages": ["Request", "Call", "Contract"], "reasons": ["No budget"]},
        "deals": items,
    }


@pytest.fixture
def cli(sqlite_url: str) -> Run:
    return runner_for(sqlite_url)
