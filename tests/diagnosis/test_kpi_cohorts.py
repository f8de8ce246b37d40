"""KPIs and cohorts on small scenarios whose numbers are computed by hand, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from tests.cli.conftest import runner_for
from voronka.analytics.diagnosis.kpi import spread_costs
from voronka.errors import InputError
from voronka.io.events import import_costs
from voronka.service import reports

PIPE = {"name": "Sales", "stages": ["Request", "Estimate"], "reasons": ["Дорого"]}
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def scenario() -> dict:
    # Channel "Ads": 4 leads in January (2 won: 100 and 300; 1 lost; 1 open), 1 lead in February (won 200).
    # Channel "SEO": 2 leads in January (1 won 50, 1 lost).
    return {
        "pipeline": PIPE,
        "deals": [
            {"source": "Ads", "amount": "100", "path": [("Request", "2026-01-05"), ("Won", "2026-01-15")]},
            {"source": "Ads", "amount": "300", "path": [("Request", "2026-01-10"), ("Won", "2026-01-30")]},
            {"source": "Ads", "amount": "999", "path": [("Request", "2026-01-12"), ("Lost", "2026-01-13", "Дорого")]},
            {"source": "Ads", "amount": "500", "path": [("Request", "2026-01-20"), ("Estimate", "2026-01-25")]},
            {"source": "Ads", "amount": "200", "path": [("Request", "2026-02-02"), ("Won", "2026-02-12")]},
            {"source": " seo ", "amount": "50", "path": [("Request", "2026-01-03"), ("Won", "2026-01-04")]},
            {"source": " seo ", "amount": "70", "path": [("Request", "2026-01-03"), ("Lost", "2026-01-05", "Дорого")]},
        ],
    }


def _costs(ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "costs.csv"
    path.write_text("channel,start,end,amount\nads,2026-01-01,2026-02-28,590\nTV,2026-01-01,2026-01-31,10\n")
    import_costs(ws, path)


def test_kpis_by_channel_and_month(ws, deals_for, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    deals_for(scenario())
    _costs(ws, tmp_path)
    r = reports.kpi(ws, now=NOW)
    rows = {(x.channel, x.month): x for x in r.rows}
    jan = rows[("Ads", "2026-01")]
    # 590 over 59 days (the file's end date is inclusive): January gets 31 days = 310, February 28 days = 280.
    assert jan.cost == pytest.approx(310)
    assert (jan.leads, jan.won, jan.decided, jan.open, jan.revenue) == (4, 2, 3, 1, 400)
    assert jan.cpl == pytest.approx(310 / 4)
    assert jan.cac == pytest.approx(155)
    assert jan.romi == pytest.approx((400 - 310) / 310)
    assert jan.avg_deal == pytest.approx(200)
    assert jan.win_rate == pytest.approx(2 / 3)
    feb = rows[("Ads", "2026-02")]
    assert feb.cost == pytest.approx(280) and feb.cac == pytest.approx(280)
    ads = rows[("Ads", "(all)")]
    # Cycle: won after 10, 20, 10 days; the open deal is censored at 40 days (20 Jan → 1 Mar): KM median 10 days.
    assert ads.cycle_days == pytest.approx(10, abs=1e-6)
    # Velocity: 1 open × 3/4 × 200 / (10 / 30.4375 months).
    assert ads.velocity_per_month == pytest.approx(1 * 0.75 * 200 / (10 / 30.4375))
    seo = rows[("seo", "(all)")] if ("seo", "(all)") in rows else rows[(" seo ", "(all)")]
    assert seo.cost is None and seo.won == 1
    assert r.unmatched_costs == {"TV": pytest.approx(10)}
    total = rows[("(all)", "(all)")]
    assert total.leads == 7 and total.won == 4 and total.revenue == pytest.approx(650)
    # No repeat-sales pipeline: LTV is the average deal (margin 1), and the assumption says so.
    assert total.ltv == pytest.approx(650 / 4)
    assert any("repeat ratio is 0" in a for a in r.assumptions)


def test_kpi_with_churn_and_margin(ws, deals_for, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    deals_for(scenario())
    _costs(ws, tmp_path)
    r = reports.kpi(ws, margin=0.5, churn=0.1, now=NOW)
    ads = next(x for x in r.rows if x.channel == "Ads" and x.month == "(all)")
    assert ads.romi == pytest.approx((600 * 0.5 - 590) / 590)
    assert ads.ltv is not None and ads.cac_payback_months == pytest.approx(ads.cac / (ads.ltv * 0.1))
    with pytest.raises(InputError, match="--margin"):
        reports.kpi(ws, margin=1.5)
    with pytest.raises(InputError, match="--churn"):
        reports.kpi(ws, churn=0)


def test_spread_costs_over_months() -> None:
    costs = pd.DataFrame({"channel": ["a"], "start": ["2026-01-30"], "end": ["2026-02-03"], "amount": [40.0]})
    out = spread_costs(costs).set_index("month")["cost"].to_dict()
    assert out == {"2026-01": pytest.approx(20), "2026-02": pytest.approx(20)}


def test_cohorts_by_month(ws, deals_for) -> None:  # type: ignore[no-untyped-def]
    deals_for(scenario())
    r = reports.cohorts(ws, "Sales", now=NOW)
    grid = r.pivot("won")
    # January cohort (6 deals): won 3 in January (15, 30 Jan; 4 Jan); February cohort (1 deal): won in February.
    assert grid.loc["2026-01", 0] == 3 and grid.loc["2026-01", 1] == 3
    assert grid.loc["2026-02", 0] == 1
    assert pd.isna(grid.loc["2026-02", 1])  # March has not ended by 1 March: not observed
    conv = r.pivot("conversion")
    assert conv.loc["2026-01", 0] == pytest.approx(3 / 6)
    assert r.pivot("revenue").loc["2026-01", 0] == pytest.approx(450)
    rows = r.to_pandas()
    assert (rows["ci_low"] <= rows["conversion"]).all() and (rows["conversion"] <= rows["ci_high"]).all()


def test_cohorts_by_week_are_iso_weeks(ws, deals_for) -> None:  # type: ignore[no-untyped-def]
    deals_for(scenario())
    r = reports.cohorts(ws, "Sales", unit="week", now=NOW)
    labels = set(r.to_pandas()["cohort"])
    assert "2026-W01" in labels  # Saturday 3 January 2026 is in ISO week 1 (Mon 29 Dec - Sun 4 Jan)
    with pytest.raises(InputError, match="week or month"):
        reports.cohorts(ws, "Sales", unit="day")


def test_cli_kpi_and_cohorts(demo_path: Path, tmp_path: Path) -> None:
    run = runner_for(f"sqlite:///{demo_path}")
    data = json.loads(run("kpi", "--from", "2026-09-01", "--format", "json").output)
    assert data["rows"][-1]["channel"] == "(all)" and data["rows"][-1]["leads"] > 0
    assert run("kpi", "--format", "csv").output.startswith("channel,month,leads")
    html = tmp_path / "cohorts.html"
    out = run("cohorts", "1", "--html", str(html)).output
    assert "Cohorts of" in out
    text = html.read_text()
    assert "plotly" in text.lower() and "heatmap" in text
    assert "cohort" in run("cohorts", "1", "--unit", "week", "--format", "csv").output.splitlines()[0]
    assert "--value" in run("cohorts", "1", "--value", "bananas", code=1).output
