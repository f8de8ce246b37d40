"""The forecast through the workspace, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from tests.forecast.conftest import small_pipeline
from voronka.errors import InputError, NotFoundError
from voronka.service.workspace import Workspace


def test_forecast_of_a_small_pipeline(ws: Workspace, deals_for: Callable[[dict[str, Any]], list[int]]) -> None:
    deals_for(small_pipeline())
    r = ws.forecast("Sales", months=2, paths=1000, as_of="2026-04-01", target=5000)
    assert r.model.startswith("simple")  # 56 finished stays: too few for age effects
    assert r.groups[0].open_deals == 4 and r.groups[0].open_amount == 4000
    m1 = r.months[0]
    assert (m1.start, m1.end) == ("2026-04-01", "2026-05-01")
    assert set(m1.stages) == {"Request", "Call", "Contract"}
    assert 0 <= m1.won.p10 <= m1.won.p50 <= m1.won.p90
    assert 0 <= r.p_target <= 1
    data = r.to_dict()
    assert set(data["months"][0]["revenue"]) >= {"mean", "p10", "p50", "p90"}
    # Two of three deals that reach Call are won: the data-driven P(win) from Call says about that.
    call = next(s for s in r.stage_odds if s.stage == "Call")
    assert 0.5 < call.p_win_new < 0.8


def test_forecast_errors_change_nothing(ws: Workspace, deals_for: Callable[[dict[str, Any]], list[int]]) -> None:
    deals_for(small_pipeline(deals=3))
    with pytest.raises(NotFoundError, match="Unknown pipeline 'Nope'"):
        ws.forecast("Nope")
    with pytest.raises(InputError, match="too little history to forecast"):
        ws.forecast("Sales", paths=500)
    with pytest.raises(InputError, match="--months 13"):
        ws.forecast("Sales", months=13)


def test_backtest_needs_history(ws: Workspace, deals_for: Callable[[dict[str, Any]], list[int]]) -> None:
    deals_for(small_pipeline())
    with pytest.raises(InputError, match="too little history to backtest"):
        ws.backtest("Sales", now="2026-03-15")
    r = ws.backtest("Sales", now="2026-06-01", paths=500, min_history_days=30)
    assert [s.horizon for s in r.summary] == [1, 2, 3]
    assert r.rows[0].origin == "2026-02-01"
    # Deal i is won on day 3i + 6 of 2026 (0 = Jan 1) unless i % 3 == 0: February is days 31 … 58.
    won_in_february = [i for i in range(26) if i % 3 and 31 <= 3 * i + 6 < 59]
    first = r.rows[0]
    assert (first.horizon, first.actual, first.won_actual) == (1, 1000 * len(won_in_february), len(won_in_february))
    assert first.p10 <= first.p50 <= first.p90 and first.won_p10 <= first.won_p50 <= first.won_p90
    s1 = r.summary[0]
    assert s1.won_wape == pytest.approx(
        sum(abs(x.won_p50 - x.won_actual) for x in r.rows if x.horizon == 1)
        / sum(x.won_actual for x in r.rows if x.horizon == 1)
    )


def test_deal_odds_for_the_board(ws: Workspace, deals_for: Callable[[dict[str, Any]], list[int]]) -> None:
    ids = deals_for(small_pipeline())
    odds = ws.deal_odds("Sales", as_of="2026-04-01")
    assert sorted(odds["deal_id"]) == sorted(ids[-4:])  # the last four are open, all in Call
    assert set(odds["stage"]) == {"Call"}
    assert odds["p_win"].between(0.5, 0.8).all()  # two of three deals that reach Call are won


def test_snapshot_deals_are_flagged_in_every_report(
    ws: Workspace, deals_for: Callable[[dict[str, Any]], list[int]]
) -> None:
    from sqlalchemy import update

    from voronka.store.schema import deals

    ids = deals_for(small_pipeline())
    with ws.transaction() as conn:
        conn.execute(update(deals).where(deals.c.id.in_(ids[:5])).values(snapshot=True))
    r = ws.forecast("Sales", as_of="2026-04-01", paths=500)
    assert any("5 of the 30 deals come from a snapshot import" in note for note in r.notes)
    b = ws.backtest("Sales", now="2026-06-01", paths=300, min_history_days=30)
    assert any("snapshot import" in note for note in b.notes)


def test_backtest_skips_origins_it_cannot_fit(ws: Workspace, deals_for: Callable[[dict[str, Any]], list[int]]) -> None:
    deals_for(small_pipeline(start=date(2026, 1, 25)))
    # Feb 1: a week of history, 5 finished stays (< 10): skipped; Mar 1 and Apr 1 have enough.
    r = ws.backtest("Sales", now="2026-05-01", paths=300, min_history_days=1, months=1)
    assert r.skipped_origins == ["2026-02-01"]
    assert [row.origin for row in r.rows] == ["2026-03-01", "2026-04-01"]
