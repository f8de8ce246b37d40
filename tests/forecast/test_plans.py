"""Plans, plan vs fact and the reverse plan, on SQLite and PostgreSQL and through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tests.cli.conftest import Run
from tests.forecast.conftest import small_pipeline
from tests.scenarios import build_scenario
from voronka.errors import InputError, NotFoundError
from voronka.service.plans import period_bounds
from voronka.service.workspace import Workspace
from voronka.store.schema import metadata

Scenario = Callable[[dict[str, Any]], list[int]]


def test_the_migration_makes_the_plans_table_of_the_schema(ws: Workspace) -> None:
    with ws.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert [d for d in diff if "plans" in repr(d)] == []


@pytest.mark.parametrize(
    ("period", "day", "bounds"),
    [
        ("week", date(2026, 12, 2), (date(2026, 11, 30), date(2026, 12, 7))),
        ("month", date(2026, 12, 31), (date(2026, 12, 1), date(2027, 1, 1))),
        ("quarter", date(2026, 11, 5), (date(2026, 10, 1), date(2027, 1, 1))),
    ],
)
def test_period_bounds(period: str, day: date, bounds: tuple[date, date]) -> None:
    assert period_bounds(period, day) == bounds


def test_plan_vs_fact_by_hand(ws: Workspace, deals_for: Scenario) -> None:
    deals_for(small_pipeline())
    ws.set_plan("revenue", "month", "2026-02", "10 000", pipeline="Sales")
    ws.set_plan("revenue", "month", "2026-02-17", "12000", pipeline="Sales")  # replaces the one above
    ws.set_plan("won", "month", "2026-02", 3, owner="Anna")
    r = ws.plan_fact("month", "2026-02-10", now="2026-02-15")
    # Deal i is won on day 3i + 6 of 2026 (day 0 = Jan 1) unless i % 3 == 0; Anna owns the odd ones.
    # Feb 1 … 14 are days 31 … 44: deals 10 (day 36, Boris) and 11 (day 39, Anna); 9 and 12 are lost.
    team = next(row for row in r.rows if row.owner == "(team)")
    assert (team.metric, team.target, team.fact) == ("revenue", 12000, 2000)
    assert team.pct_done == pytest.approx(2000 / 12000)
    assert r.elapsed == pytest.approx(14 / 28)
    assert team.run_rate == pytest.approx(4000)
    anna = next(row for row in r.rows if row.owner == "Anna" and row.target is not None)
    assert (anna.metric, anna.fact, anna.target) == ("won", 1, 3)
    boris = next(row for row in r.rows if row.owner == "Boris" and row.metric == "revenue")
    assert boris.target is None and boris.fact == 1000  # side by side, with no plan of his own
    side_by_side = [row.fact for row in r.rows if row.metric == "revenue" and row.owner != "(team)"]
    assert sum(side_by_side) == team.fact  # the managers add up to the team
    weeks = [w for w in r.weeks if w.metric == "revenue"]
    assert [w.week_start for w in weeks] == ["2026-02-01", "2026-02-02", "2026-02-09"]  # ISO weeks, cut at Feb 1
    assert [w.fact for w in weeks] == [0, 1000, 1000]
    assert weeks[-1].cumulative == 2000 and weeks[-1].planned_cumulative == pytest.approx(12000 * 15 / 28)


def test_plan_errors_change_nothing(ws: Workspace, deals_for: Scenario) -> None:
    deals_for(small_pipeline(deals=3))
    with pytest.raises(InputError, match="Unknown metric 'sales'"):
        ws.set_plan("sales", "month", "2026-02", 5)
    with pytest.raises(InputError, match="Unknown period 'year'"):
        ws.set_plan("won", "year", "2026-02", 5)
    with pytest.raises(InputError, match="Unknown manager 'Nobody'"):
        ws.set_plan("won", "month", "2026-02", 5, owner="Nobody")
    with pytest.raises(NotFoundError, match="Unknown pipeline 'Nope'"):
        ws.set_plan("won", "month", "2026-02", 5, pipeline="Nope")
    with pytest.raises(InputError, match="whole number"):
        ws.set_plan("won", "month", "2026-02", "2.5")
    assert ws.plan_fact("month", "2026-02").rows == []


def test_reverse_plan(ws: Workspace, deals_for: Scenario) -> None:
    deals_for(small_pipeline())
    r = ws.plan_need("Sales", 20_000, months=2, paths=2000, as_of="2026-04-01")
    assert r.horizon_end == "2026-06-01"
    assert r.leads_per_week_needed > 0
    assert r.p_current_inflow < 0.8 or r.leads_per_week_needed <= r.leads_per_week_now * 1.05
    easy = ws.plan_need("Sales", 1, months=2, paths=2000, as_of="2026-04-01")
    assert easy.leads_per_week_needed <= r.leads_per_week_needed
    assert {i.stage for i in r.improvements} == {"Request", "Call", "Contract"}
    with pytest.raises(InputError, match="--confidence 1.5"):
        ws.plan_need("Sales", 20_000, confidence=1.5)


@pytest.fixture
def sales(sqlite_url: str) -> None:
    w = Workspace.connect(sqlite_url)
    build_scenario(w, small_pipeline())
    w.close()


def test_plan_cli(cli: Run, sales: None) -> None:
    assert "Plan set: revenue 12 000 RUB" in cli("plan", "set", "--start", "2026-02", "--target", "12000").stdout
    shown = cli("plan", "show", "--start", "2026-02", "--now", "2026-02-15").stdout
    assert "Plan vs fact" in shown and "16.7%" in shown
    data = json.loads(cli("plan", "show", "--start", "2026-02", "--now", "2026-02-15", "-f", "json").stdout)
    assert data["rows"][0]["fact"] == 2000
    need = json.loads(
        cli(
            "plan", "need", "Sales", "--target", "20000", "--as-of", "2026-04-01", "--paths", "500", "-f", "json"
        ).stdout
    )
    assert need["confidence"] == 0.8 and need["leads_needed"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("plan", "set", "--target", "5", "--metric", "sales"), "Unknown metric 'sales'"),
        (("plan", "set", "--target", "-5"), "--target"),
        (("plan", "set", "--target", "5", "--start", "2026-13"), "2026-13"),
        (("plan", "set", "--target", "5", "--owner", "Nobody"), "Unknown manager 'Nobody'"),
        (("plan", "set", "--target", "5", "--currency", "rubles"), "Malformed currency 'rubles'"),
        (("plan", "show", "--period", "year"), "Unknown period 'year'"),
        (("plan", "need", "Nope", "--target", "5"), "Unknown pipeline 'Nope'"),
        (("plan", "need", "Sales", "--target", "0"), "--target 0"),
        (("plan", "need", "Sales", "--target", "5", "--confidence", "0.2"), "--confidence 0.2"),
    ],
)
def test_plan_bad_input(cli: Run, sales: None, args: tuple[str, ...], message: str) -> None:
    result = cli(*args, code=1)
    assert result.stderr.startswith("Error: ") and message in result.stderr


def with_dollars(scenario: dict[str, Any]) -> dict[str, Any]:
    """The small pipeline with every fourth deal in USD (amount 10) instead of 1000 RUB."""
    for i, deal in enumerate(scenario["deals"]):
        if i % 4 == 1:
            deal.update(amount="10", currency="USD")
    return scenario


def test_revenue_in_another_currency_is_converted_at_the_days_rate(ws: Workspace, deals_for: Scenario) -> None:
    deals_for(with_dollars(small_pipeline()))
    ws.set_plan("revenue", "month", "2026-02", 12000, currency="RUB")
    # February wins: deals 10, 11, 13, 14, 16, 17 (day 3i + 6); the USD ones (i % 4 == 1) are 13 (day 45 =
    # Feb 15) and 17 (day 57 = Feb 27). Before Feb 15 there are no dollars: 2000 RUB and nothing skipped.
    r = ws.plan_fact("month", "2026-02", now="2026-02-15")
    assert r.rows[0].fact == 2000 and r.skipped_other_currency == 0
    # Over the whole month, without a rate the two USD wins are left out and counted; with one, converted.
    r = ws.plan_fact("month", "2026-02", now="2026-03-01")
    assert r.skipped_other_currency == 2
    from voronka.service.rates import set_rate

    set_rate(ws, "USD", "RUB", 90, "2026-02-01")
    set_rate(ws, "USD", "RUB", 100, "2026-02-28")  # after both wins: not used for them
    r = ws.plan_fact("month", "2026-02", now="2026-03-01")
    team = r.rows[0]
    assert r.skipped_other_currency == 0
    won = [i for i in range(26) if i % 3 and 31 <= 3 * i + 6 < 59]  # deals won in February
    rub = sum(1000 for i in won if i % 4 != 1)
    usd = sum(10 for i in won if i % 4 == 1)
    assert team.fact == pytest.approx(rub + 90 * usd)


def test_forecast_converts_to_one_currency_or_says_which_rate_is_missing(ws: Workspace, deals_for: Scenario) -> None:
    deals_for(with_dollars(small_pipeline()))
    with pytest.raises(InputError, match=r"No USD → RUB rate on or before 2026-04-01: add one with voronka rates set"):
        ws.forecast("Sales", as_of="2026-04-01", paths=500)
    from voronka.service.rates import set_rate

    set_rate(ws, "RUB", "USD", 0.01, "2026-01-01")  # the inverse pair is used when it is the one known
    r = ws.forecast("Sales", as_of="2026-04-01", paths=500)
    assert r.currency == "RUB"
    open_ids = range(26, 30)
    assert r.groups[0].open_amount == pytest.approx(sum(10 * 100 if i % 4 == 1 else 1000 for i in open_ids))
    usd = ws.forecast("Sales", as_of="2026-04-01", paths=500, currency="USD")
    assert usd.currency == "USD" and usd.groups[0].open_amount == pytest.approx(r.groups[0].open_amount / 100)


def test_rates_cli(cli: Run, sales: None, tmp_path: Any) -> None:
    cli("rates", "set", "USD", "RUB", "92.5", "--day", "2026-01-01")
    f = tmp_path / "rates.csv"
    f.write_text("date,currency,rate\n2026-02-01,USD,95\n2026-02-01,EUR,101,5\n".replace("101,5", '"101,5"'))
    assert "Imported 2 rates" in cli("rates", "import", str(f), "--quote", "RUB").stdout
    listed = json.loads(cli("rates", "list", "-f", "json").stdout)
    assert {(r["currency"], r["day"], r["rate"]) for r in listed} == {
        ("EUR", "2026-02-01", 101.5),
        ("USD", "2026-01-01", 92.5),
        ("USD", "2026-02-01", 95.0),
    }
    bad = tmp_path / "bad.csv"
    bad.write_text("date,currency,rate\n2026-03-01,USD,95\n2026-03-01,EUR,lots\n")
    result = cli("rates", "import", str(bad), "--quote", "RUB", code=1)
    assert "row 3, column 'rate': value 'lots'" in result.stderr
    assert len(json.loads(cli("rates", "list", "-f", "json").stdout)) == 3  # nothing of the bad file landed
    assert "Malformed currency 'dollars'" in cli("rates", "set", "dollars", "RUB", "1", code=1).stderr
    assert "must be positive" in cli("rates", "set", "USD", "RUB", "0", code=1).stderr
