"""CRM stages as funnel steps: web events and a workspace pipeline in one funnel, joined by a lead-id property."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from voronka.analytics.events import EventSource, FunnelQuery, FunnelQueryError, StageStep, run_funnel
from voronka.service.workspace import Workspace

T = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def crm(sqlite_ws: Workspace) -> Workspace:
    ws = sqlite_ws
    ws.create_pipeline("Sales", stages=["Request", "Call", "Contract"], reasons=["Too expensive"])
    a = ws.add_deal("Sales", "A", external_id="L1", at=T + timedelta(hours=1))
    ws.move_deal(a.id, "Contract", at=T + timedelta(days=2))  # skips Call: passes it
    ws.move_deal(a.id, "Won", at=T + timedelta(days=3))
    b = ws.add_deal("Sales", "B", external_id="L2", at=T + timedelta(hours=2))
    ws.move_deal(b.id, "Call", at=T + timedelta(days=20))  # outside a 14-day window
    ws.add_deal("Sales", "C", external_id="L9", at=T)  # no web events carry L9
    return ws


def _log() -> pd.DataFrame:
    rows = [
        ("v1", T, "visit", None),
        ("v1", T + timedelta(minutes=30), "request", "L1"),
        ("v2", T, "visit", None),
        ("v2", T + timedelta(minutes=90), "request", "L2"),
        ("v3", T, "visit", None),
    ]
    return pd.DataFrame(rows, columns=["entity", "time", "event", "lead_id"])


def test_visit_request_contract_paid(crm: Workspace) -> None:
    steps = ("visit", "request", StageStep("Sales", "Call"), StageStep("Sales", "Won", name="paid"))
    q = FunnelQuery(steps=steps, window="14d", crm_key="lead_id")
    r = run_funnel(EventSource(_log(), crm=crm), q)
    assert [s.name for s in r.steps] == ["visit", "request", "Call", "paid"]
    assert [s.entities for s in r.steps] == [3, 2, 1, 1]
    assert r.entity_ids(4) == ["v1"]
    assert r.steps[2].median_seconds_from_previous == timedelta(days=2, minutes=-30).total_seconds()


def test_workspace_events_as_the_source(crm: Workspace, tmp_path: object) -> None:
    from voronka.io.events import import_events, read_events

    path = tmp_path / "ev.csv"  # type: ignore[operator]
    _log().to_csv(path, index=False)
    batch, rows = read_events(path, source="web")
    import_events(crm, batch, rows)
    q = FunnelQuery(steps=("request", StageStep("Sales", "Contract")), window="14d", crm_key="lead_id")
    assert [s.entities for s in run_funnel(EventSource(crm), q).steps] == [2, 1]


def test_rules(crm: Workspace) -> None:
    with pytest.raises(FunnelQueryError, match=r"\[stages.key\]"):
        FunnelQuery(steps=("visit", StageStep("Sales", "Call")))
    with pytest.raises(FunnelQueryError, match=r"\[stages.unused_key\]"):
        FunnelQuery(steps=("visit",), crm_key="lead_id")
    q = FunnelQuery(steps=("visit", StageStep("Sales", "Call")), crm_key="lead_id")
    with pytest.raises(FunnelQueryError, match=r"\[stages.workspace\]"):
        run_funnel(EventSource(_log()), q)
    with pytest.raises(FunnelQueryError, match=r"\[engine.unsupported\]"):
        run_funnel(EventSource(_log(), crm=crm), q, engine="clickhouse")


def test_cli(crm: Workspace, tmp_path: object) -> None:
    import json

    from tests.cli.conftest import runner_for

    path = tmp_path / "ev.parquet"  # type: ignore[operator]
    _log().to_parquet(path)
    run = runner_for(crm.url)
    steps = "visit,request,stage:Sales:Call,stage:Sales:Won"
    out = run("events", "funnel", str(path), "--steps", steps, "--window", "14d", "--crm-key", "lead_id", "-f", "json")
    assert [s["entities"] for s in json.loads(out.output)["steps"]] == [3, 2, 1, 1]
    bad = run("events", "funnel", str(path), "--steps", "visit,stage:Sales", "--crm-key", "lead_id", code=1)
    assert "[stages.format]" in bad.output
