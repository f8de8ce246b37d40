"""Reading the move log for the funnel: ADBC on SQLite files, SQLAlchemy on PostgreSQL and in-memory SQLite.

These are about the reader rather than the funnel's definitions: columns with no values at all, columns whose
first thousand rows are empty, and what the funnel sees of writes made after an earlier funnel.
"""

from __future__ import annotations

from datetime import timedelta

import voronka
from tests.helpers import dump_url
from tests.scenarios import T
from voronka.service.workspace import Workspace


def test_deals_without_owner_source_segment_or_loss_reasons(ws: Workspace) -> None:
    # Every nullable column of the log is empty: no owner, source or segment, no move with a reason.
    ws.create_pipeline("Sales", stages=["Request", "Call"], reason_required=False)
    a = ws.add_deal("Sales", "A", at=T("2026-01-01"))
    b = ws.add_deal("Sales", "B", at=T("2026-01-02"))
    ws.move_deal(a.id, "Call", at=T("2026-01-03"))
    ws.move_deal(b.id, "Lost", at=T("2026-01-04"))
    r = ws.funnel("Sales", by="owner")
    assert (r.overall.entered, r.overall.lost, r.overall.open) == (2, 1, 1)
    assert r.stages[0].lost_reasons == {"(no reason)": 1}
    assert [g.group for g in r.groups] == ["(none)"]
    assert [g.group for g in ws.funnel("Sales", by="source").groups] == ["(none)"]
    assert [g.group for g in ws.funnel("Sales", by="segment").groups] == ["(none)"]


def test_in_memory_workspace() -> None:
    # sqlite:// has no file for ADBC to open: the funnel reads it through SQLAlchemy (the docstring example).
    ws = voronka.open("sqlite://")
    try:
        ws.create_pipeline("Sales", stages=["Request", "Call", "Contract"], reasons=["Too expensive"])
        d = ws.add_deal("Sales", "Kitchen", amount="150000", at=T("2026-01-10"))
        ws.move_deal(d.id, "Contract", at=T("2026-01-12"))
        r = ws.funnel("Sales")
        assert r.overall.entered == 1
        assert [s.reached for s in r.stages] == [1, 1, 1, 0]
        assert r.stages[0].median_days == 2.0
    finally:
        ws.close()


def test_a_text_column_empty_in_the_first_thousand_deals(sqlite_ws: Workspace) -> None:
    # ADBC's SQLite driver types a column from its first batch of rows (1024 by default): sources that start
    # only after the first thousand deals must still be read as text.
    sqlite_ws.create_pipeline("Sales", stages=["Request", "Call"])
    with sqlite_ws.transaction():
        for i in range(1100):
            source = "web" if i >= 1050 else None
            sqlite_ws.add_deal("Sales", f"Deal {i}", source=source, at=T("2026-01-01") + timedelta(minutes=i))
    groups = {g.group: g.overall.entered for g in sqlite_ws.funnel("Sales", by="source").groups}
    assert groups == {"(none)": 1050, "web": 50}


def test_a_funnel_sees_writes_made_after_an_earlier_funnel(ws: Workspace, backend_url: str) -> None:
    ws.create_pipeline("Sales", stages=["Request", "Call"])
    ws.add_deal("Sales", "First", at=T("2026-01-01"))
    assert ws.funnel("Sales").overall.entered == 1
    ws.add_deal("Sales", "Second", at=T("2026-01-02"))
    assert ws.funnel("Sales").overall.entered == 2
    assert len(dump_url(backend_url)["deals"]) == 2  # and another connection sees it too
