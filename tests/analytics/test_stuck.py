"""Stuck deals: open, longer than the stage's SLA, and nothing open planned ahead."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.scenarios import T
from voronka.errors import NotFoundError
from voronka.service.workspace import Workspace

NOW = T("2026-01-03T00:00")


@pytest.fixture
def board(ws: Workspace) -> dict[str, int]:
    ws.create_pipeline(
        "Sales",
        stages=["Request", "Call", "Estimate", "Contract"],
        sla_days=[1, 2, None, 5],
        reasons=["Дорого"],
    )
    ws.create_pipeline("Repeat", stages=["Offer"], sla_days=[0.5])

    def deal(title: str, stage: str, since: str, pipeline: str = "Sales", **kw: object) -> int:
        return ws.add_deal(pipeline, title, stage=stage, at=T(since), **kw).id  # type: ignore[arg-type]

    ids = {
        "over": deal("Over", "Request", "2026-01-01", owner="Anna", amount="1500"),
        "planned": deal("Planned", "Request", "2026-01-01"),
        "overdue task": deal("Overdue task", "Request", "2026-01-01"),
        "done task": deal("Done task", "Request", "2026-01-01"),
        "no sla": deal("No SLA", "Estimate", "2025-06-01"),
        "within": deal("Within", "Call", "2026-01-02"),
        "at the limit": deal("At the limit", "Request", "2026-01-02"),
        "won": deal("Won", "Request", "2025-12-01"),
        "long over": deal("Long over", "Contract", "2025-12-01"),
        "other pipeline": deal("Other pipeline", "Offer", "2026-01-01", pipeline="Repeat"),
        "moved recently": deal("Moved recently", "Request", "2025-12-01"),
    }
    ws.add_activity(ids["planned"], "task", at=T("2026-01-01"), due_at=T("2026-01-10"))
    ws.add_activity(ids["overdue task"], "task", at=T("2026-01-01"), due_at=T("2026-01-02"))
    ws.add_activity(ids["done task"], "call", at=T("2026-01-01"), due_at=T("2026-01-10"), done=True)
    ws.move_deal(ids["won"], "Won", at=T("2025-12-02"))
    ws.move_deal(ids["moved recently"], "Call", at=T("2026-01-02T12:00"))
    return ids


def test_stuck_deals_are_over_their_sla_with_nothing_planned(ws: Workspace, board: dict[str, int]) -> None:
    result = ws.stuck("Sales", now=NOW)
    # Over their SLA: "long over" 33 days in Contract (SLA 5: over by 28), then three 2 days in Request
    # (SLA 1: over by 1) in id order. Not stuck: a future undone task ("planned"), no SLA, within the SLA,
    # exactly at it (not longer), won, left the stage recently.
    assert [d.title for d in result.deals] == ["Long over", "Over", "Overdue task", "Done task"]
    first, over = result.deals[0], result.deals[1]
    assert (first.stage, first.days_in_stage, first.sla_days, first.days_over_sla) == (
        "Contract",
        33.0,
        5,
        28.0,
    )
    assert (over.id, over.pipeline, over.stage, over.owner, over.amount, over.currency) == (
        board["over"],
        "Sales",
        "Request",
        "Anna",
        Decimal("1500.00"),
        "RUB",
    )
    assert (over.days_in_stage, over.sla_days, over.days_over_sla) == (2.0, 1, 1.0)
    assert over.in_stage_since == T("2026-01-01")
    shown = next(d for d in result.to_dict()["deals"] if d["id"] == board["over"])
    assert (shown["amount"], shown["in_stage_since"]) == ("1500.00", "2026-01-01T00:00:00+00:00")
    assert "SLA" in result.definition and result.now == NOW


def test_completing_or_planning_work_changes_what_is_stuck(ws: Workspace, board: dict[str, int]) -> None:
    ws.add_activity(board["over"], "meeting", at=T("2026-01-02"), due_at=T("2026-01-04"))
    [planned] = ws.activities(board["planned"])
    ws.complete_activity(planned.id)
    titles = [d.title for d in ws.stuck("Sales", now=NOW).deals]
    assert "Over" not in titles and "Planned" in titles


def test_stuck_in_every_pipeline_and_as_data(ws: Workspace, board: dict[str, int]) -> None:
    result = ws.stuck(now=NOW)
    assert {d.pipeline for d in result.deals} == {"Sales", "Repeat"}
    assert [d.title for d in ws.stuck("Repeat", now=NOW).deals] == ["Other pipeline"]
    data = result.to_dict()
    assert data["now"] == NOW.isoformat() and len(data["deals"]) == 5
    assert list(result.to_pandas().columns)[:4] == ["id", "title", "pipeline", "stage"]
    with pytest.raises(NotFoundError, match="Unknown pipeline 'Nope'"):
        ws.stuck("Nope", now=NOW)


def test_no_sla_anywhere_means_nothing_is_stuck(ws: Workspace) -> None:
    ws.create_pipeline("Plain", stages=["A", "B"])
    ws.add_deal("Plain", "Old", at=T("2020-01-01"))
    assert ws.stuck(now=NOW).deals == []
