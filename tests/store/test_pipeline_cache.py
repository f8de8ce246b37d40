"""Moves read pipelines from memory, keyed by the catalogue version that database triggers change: any change to
a pipeline, its stages or its reasons, by Voronka or by hand-written SQL, is seen by the very next move."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from tests.scenarios import T
from voronka.errors import NotFoundError
from voronka.service.workspace import Workspace
from voronka.store.schema import pipelines


def _version(ws: Workspace, pid: int) -> int:
    with ws.engine.connect() as conn:
        return int(conn.scalar(select(pipelines.c.catalogue_version).where(pipelines.c.id == pid)))


def test_every_catalogue_change_changes_the_version(ws: Workspace) -> None:
    pipe = ws.create_pipeline("Sales", stages=["Lead", "Call"], reasons=["Price"])
    other = ws.create_pipeline("Repeat", stages=["Offer"])
    seen = {_version(ws, pipe.id)}
    untouched = _version(ws, other.id)
    changes = [
        lambda: ws.add_stage("Sales", "Estimate"),
        lambda: ws.add_reason("Sales", "No need"),
        lambda: ws.set_sla("Sales", "Lead", 2),
    ]
    sql = [
        "UPDATE stages SET name = 'First call' WHERE name = 'Call'",
        "UPDATE loss_reasons SET name = 'Too dear' WHERE name = 'Price'",
        "DELETE FROM loss_reasons WHERE name = 'No need'",
        "UPDATE pipelines SET reason_required = false WHERE name = 'Sales'",
        "UPDATE pipelines SET name = 'New sales' WHERE name = 'Sales'",
    ]
    for change in changes:
        change()
        seen.add(_version(ws, pipe.id))
    for statement in sql:
        with ws.engine.begin() as conn:
            conn.execute(text(statement))
        seen.add(_version(ws, pipe.id))
    assert len(seen) == 1 + len(changes) + len(sql)
    assert _version(ws, other.id) == untouched  # other pipelines keep theirs


def test_a_move_sees_a_change_made_after_the_pipeline_was_cached(ws: Workspace) -> None:
    ws.create_pipeline("Sales", stages=["Lead", "Call", "Estimate"], reasons=["Price"])
    deal = ws.add_deal("Sales", "Door", at=T("2026-01-10"))
    ws.move_deal(deal.id, "Call", at=T("2026-01-11"))  # the pipeline is now in memory
    with ws.engine.begin() as conn:  # another program renames a stage and a reason behind Voronka's back
        conn.execute(text("UPDATE stages SET name = 'Quote' WHERE name = 'Estimate'"))
        conn.execute(text("UPDATE loss_reasons SET name = 'Too dear' WHERE name = 'Price'"))
    with pytest.raises(NotFoundError, match="'Quote'"):
        ws.move_deal(deal.id, "Estimate", at=T("2026-01-12"))
    assert ws.move_deal(deal.id, "Quote", at=T("2026-01-12")).stage_id == ws.pipeline("Sales").stage("Quote").id
    lost = ws.pipeline("Sales").lost_stages[0]
    assert ws.move_deal(deal.id, lost.name, reason="too dear", at=T("2026-01-13")).reason == "Too dear"


def test_a_pipeline_made_again_under_the_same_id_gets_a_new_version(ws: Workspace) -> None:
    first = ws.create_pipeline("Sales", stages=["Lead", "Call"])
    old = _version(ws, first.id)
    with ws.engine.begin() as conn:  # deleted and inserted again by hand, under the same id
        conn.execute(text("DELETE FROM stages"))
        conn.execute(text("DELETE FROM pipelines"))
        row = {"id": first.id, "name": "Sales", "process": "custom", "reason_required": True}
        conn.execute(pipelines.insert().values(**row, created_at=T("2026-01-01"), catalogue_version=old))
    assert _version(ws, first.id) not in (0, old)  # random, not a counter that would come round to `old` again
