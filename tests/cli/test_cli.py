"""The CLI's happy paths through the runner: pipelines, deals, the funnel in every format, stuck deals."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from tests.cli.conftest import Run

STAGE_KEYS = {
    "name",
    "reached",
    "passed",
    "conversion",
    "ci_low",
    "ci_high",
    "conversion_from_start",
    "lost",
    "lost_reasons",
    "open",
    "median_days",
    "p90_days",
}
OVERALL_KEYS = {
    "entered",
    "won",
    "lost",
    "open",
    "conversion",
    "ci_low",
    "ci_high",
    "median_cycle_days",
    "p90_cycle_days",
    "definition",
}


def add(cli: Run, title: str, at: str, *extra: str) -> int:
    out = cli("deal", "add", "--pipeline", "Sales", "--title", title, "--at", at, *extra).stdout
    return int(out)


@pytest.fixture
def skip_board(cli: Run) -> Run:
    """The "skip" scenario of tests/analytics/test_funnel_scenarios.py, typed in through the CLI."""
    cli(
        "pipeline",
        "create",
        "Sales",
        "--stages",
        "Request,Call,Estimate,Contract",
        "--reasons",
        "Дорого,No budget",
    )
    d1 = add(cli, "D1", "2026-01-01", "--owner", "Anna", "--source", "web")
    cli("deal", "move", str(d1), "Estimate", "--at", "2026-01-03")
    cli("deal", "move", str(d1), "Won", "--at", "2026-01-08")
    d2 = add(cli, "D2", "2026-01-02", "--owner", "Anna", "--source", "ads")
    cli("deal", "move", str(d2), "Call", "--at", "2026-01-03")
    cli("deal", "move", str(d2), "Contract", "--at", "2026-01-05")
    cli("deal", "move", str(d2), "Lost", "--at", "2026-01-07", "--reason", "дорого")
    d3 = add(cli, "D3", "2026-01-03", "--owner", "Boris")
    cli("deal", "move", str(d3), "Contract", "--at", "2026-01-04")
    add(cli, "D4", "2026-01-04", "--owner", "Boris")
    return cli


def test_deal_add_prints_the_id_alone(cli: Run) -> None:
    cli("pipeline", "create", "Sales", "--stages", "Request,Call")
    assert cli("deal", "add", "--pipeline", "Sales", "--title", "Kitchen").stdout == "1\n"
    assert cli("deal", "add", "--pipeline", "sales", "--title", "Wardrobe", "--amount", "1 234,50").stdout == "2\n"
    shown = json.loads(cli("deal", "show", "2", "--format", "json").stdout)
    assert (shown["title"], shown["amount"], shown["currency"], shown["stage"]) == (
        "Wardrobe",
        "1234.50",
        "RUB",
        "Request",
    )


def test_pipeline_create_from_the_made_to_order_template(cli: Run) -> None:
    out = cli("pipeline", "create", "Kitchens", "--template", "made-to-order", "--reasons", "Дорого, Сроки").stdout
    assert "Created pipeline 'Kitchens' (id 1)" in out
    assert "Request → Call / qualification → Preliminary estimate → Exact estimate & contract → Sale" in out
    assert "lost: Lost" in out
    cli(
        "pipeline",
        "create",
        "Кухни",
        "--template",
        "made-to-order",
        "--lang",
        "ru",
        "--lost",
        "Отказ",
        "--lost",
        "Спам",
    )
    listed = json.loads(cli("pipeline", "list", "--format", "json").stdout)
    assert [p["name"] for p in listed] == ["Kitchens", "Кухни"]
    kitchens, ru = listed
    assert [(s["name"], s["kind"]) for s in kitchens["stages"]] == [
        ("Request", "open"),
        ("Call / qualification", "open"),
        ("Preliminary estimate", "open"),
        ("Exact estimate & contract", "open"),
        ("Sale", "won"),
        ("Lost", "lost"),
    ]
    assert kitchens["reasons"] == ["Дорого", "Сроки"] and kitchens["reason_required"] is True
    assert [s["name"] for s in ru["stages"]][-3:] == ["Продажа", "Отказ", "Спам"]
    table = cli("pipeline", "list").stdout
    assert "Kitchens" in table and "Кухни" in table


def test_pipeline_sla_set_and_cleared(cli: Run) -> None:
    cli("pipeline", "create", "Sales", "--stages", "Request,Call,Contract", "--sla", "1,,2.5")
    stages = json.loads(cli("pipeline", "list", "--format", "json").stdout)[0]["stages"]
    assert [s["sla_days"] for s in stages[:3]] == [1.0, None, 2.5]
    assert "SLA of 'Call': 3 days" in cli("pipeline", "sla", "Sales", "call", "3").stdout
    assert "SLA of 'Call': none" in cli("pipeline", "sla", "Sales", "Call").stdout


def test_deal_move_says_what_kind_of_move_it_was(cli: Run) -> None:
    cli("pipeline", "create", "Sales", "--stages", "Request,Call,Estimate", "--reasons", "Дорого")
    cli("pipeline", "create", "Repeat", "--stages", "Offer")
    add(cli, "Kitchen", "2026-01-01")
    steps = [
        (("Estimate",), "Request → Estimate (skip)"),
        (("Call",), "Estimate → Call (back)"),
        (("Lost", "--reason", "ДОРОГО"), "Call → Lost (lost)"),
        (("Call",), "Lost → Call (reopen)"),
        (("Offer", "--pipeline", "Repeat"), "Call → Offer (transfer)"),
        (("Won",), "Offer → Won (won)"),
    ]
    for day, (args, said) in enumerate(steps, start=2):
        out = cli("deal", "move", "1", args[0], "--at", f"2026-01-0{day}", *args[1:]).stdout
        assert out.strip() == f"Deal 1: {said} at 2026-01-0{day}T00:00:00+00:00"


def test_deal_show_by_external_id(cli: Run) -> None:
    cli("pipeline", "create", "Sales", "--stages", "Request,Call,Estimate", "--reasons", "Дорого")
    add(cli, "Kitchen", "2026-01-01T09:30", "--external-id", "AMO-17", "--owner", "Anna", "--amount", "150000")
    cli("deal", "move", "1", "Estimate", "--at", "2026-01-02", "--by", "Boris", "--comment", "fast")
    cli("deal", "move", "1", "Lost", "--at", "2026-01-03", "--reason", "дорого")
    shown = json.loads(cli("deal", "show", "--external-id", "AMO-17", "--format", "json").stdout)
    assert (shown["id"], shown["external_id"], shown["stage"], shown["pipeline"]) == (
        1,
        "AMO-17",
        "Lost",
        "Sales",
    )
    assert (shown["owner"], shown["amount"], shown["version"]) == ("Anna", "150000.00", 3)
    assert [(h["from"], h["to"], h["kind"]) for h in shown["history"]] == [
        (None, "Request", "create"),
        ("Request", "Estimate", "skip"),
        ("Estimate", "Lost", "lost"),
    ]
    assert shown["history"][0]["at"] == "2026-01-01T09:30:00+00:00"
    assert (shown["history"][1]["author"], shown["history"][1]["comment"]) == ("Boris", "fast")
    assert shown["history"][2]["reason"] == "Дорого"
    assert shown == json.loads(cli("deal", "show", "1", "--format", "json").stdout)
    table = cli("deal", "show", "--external-id", "AMO-17").stdout
    assert "Deal 1" in table and "external id AMO-17" in table and "Stage history" in table
    rows = list(csv.DictReader(io.StringIO(cli("deal", "show", "1", "--format", "csv").stdout)))
    assert [r["kind"] for r in rows] == ["create", "skip", "lost"]


def test_funnel_json(skip_board: Run) -> None:
    data = json.loads(skip_board("funnel", "Sales", "--format", "json").stdout)
    assert (data["pipeline"], data["strict"], data["by"], data["groups"]) == ("Sales", False, None, [])
    for stage in data["stages"]:
        assert set(stage) >= STAGE_KEYS
    assert set(data["overall"]) >= OVERALL_KEYS
    # The hand-computed skip scenario (see tests/analytics/test_funnel_scenarios.py::test_skip).
    assert [s["name"] for s in data["stages"]] == ["Request", "Call", "Estimate", "Contract", "Won"]
    assert [s["reached"] for s in data["stages"]] == [4, 3, 3, 3, 1]
    assert [s["passed"] for s in data["stages"]] == [3, 3, 3, 1, None]
    assert [s["lost"] for s in data["stages"]] == [0, 0, 0, 1, 0]
    assert data["stages"][3]["lost_reasons"] == {"Дорого": 1}
    assert [s["median_days"] for s in data["stages"]] == [1.0, 2.0, 5.0, 2.0, None]
    assert data["stages"][0]["p90_days"] == 1.8
    o = data["overall"]
    assert (o["entered"], o["won"], o["lost"], o["open"], o["conversion"], o["median_cycle_days"]) == (
        4,
        1,
        1,
        2,
        0.25,
        7.0,
    )
    assert o["definition"] == data["definition"] and "Wilson 95%" in o["definition"]
    strict = json.loads(skip_board("funnel", "Sales", "--strict", "--format", "json").stdout)
    assert strict["strict"] is True
    assert [s["reached"] for s in strict["stages"]] == [4, 1, 1, 2, 1]
    assert "entered the stage itself (strict)" in strict["definition"]
    by = json.loads(skip_board("funnel", "Sales", "--by", "owner", "--format", "json").stdout)
    assert {g["group"]: g["overall"]["entered"] for g in by["groups"]} == {"Anna": 2, "Boris": 2}
    period = json.loads(skip_board("funnel", "1", "--from", "2026-01-02", "--to", "2026-01-04", "-f", "json").stdout)
    assert period["overall"]["entered"] == 2  # D2 (Jan 2) and D3 (Jan 3); D4 entered at "to" itself
    assert (period["start"], period["end"]) == ("2026-01-02T00:00:00+00:00", "2026-01-04T00:00:00+00:00")


def test_funnel_csv(skip_board: Run) -> None:
    rows = list(csv.DictReader(io.StringIO(skip_board("funnel", "Sales", "--format", "csv").stdout)))
    assert set(rows[0]) >= STAGE_KEYS
    assert [r["name"] for r in rows] == ["Request", "Call", "Estimate", "Contract", "Won"]
    assert [int(r["reached"]) for r in rows] == [4, 3, 3, 3, 1]
    assert json.loads(rows[3]["lost_reasons"]) == {"Дорого": 1}
    assert rows[4]["passed"] == "" and rows[4]["median_days"] == ""
    grouped = list(csv.DictReader(io.StringIO(skip_board("funnel", "Sales", "--by", "source", "-f", "csv").stdout)))
    assert len(grouped) == 3 * 5  # web, ads, (none) x five stages
    assert {r["source"] for r in grouped} == {"web", "ads", "(none)"}


def test_funnel_table(skip_board: Run) -> None:
    out = skip_board("funnel", "Sales").stdout
    assert "Funnel 'Sales' — 4 deals entered (implied counting)" in out
    for name in ("Request", "Call", "Estimate", "Contract", "Won"):
        assert name in out
    assert "1: Дорого 1" in out
    assert "Overall: won 1, lost 1, open 2 · conversion 25.0%" in out
    assert "(strict counting)" in skip_board("funnel", "Sales", "--strict").stdout
    by = skip_board("funnel", "Sales", "--by", "owner").stdout
    assert "Anna" in by and "Boris" in by


def test_stuck(cli: Run) -> None:
    cli("pipeline", "create", "Sales", "--stages", "Request,Call,Estimate", "--sla", "1,2,")
    stuck = add(cli, "Forgotten", "2020-01-01", "--owner", "Anna")
    planned = add(cli, "Planned", "2020-01-01")
    overdue = add(cli, "Overdue task", "2020-01-01")
    no_sla = add(cli, "No SLA", "2020-01-01", "--stage", "Estimate")
    assert cli("deal", "activity", str(planned), "--kind", "task", "--due", "2999-01-01").stdout == "1\n"
    cli("deal", "activity", str(overdue), "--kind", "call", "--due", "2020-02-01")
    data = json.loads(cli("stuck", "--format", "json").stdout)
    ids = [d["id"] for d in data["deals"]]
    assert sorted(ids) == [stuck, overdue]  # the one with a future task, and the one without an SLA, are not
    assert planned not in ids and no_sla not in ids
    first = next(d for d in data["deals"] if d["id"] == stuck)
    assert (first["stage"], first["owner"], first["sla_days"]) == ("Request", "Anna", 1.0)
    assert first["days_over_sla"] == pytest.approx(first["days_in_stage"] - 1, abs=0.11)
    table = cli("stuck", "Sales").stdout
    assert "Stuck deals: 2" in table and "Forgotten" in table and "Planned" not in table
    rows = list(csv.DictReader(io.StringIO(cli("stuck", "--format", "csv").stdout)))
    assert sorted(int(r["id"]) for r in rows) == [stuck, overdue]


def test_a_command_starts_without_the_heavy_libraries() -> None:
    # Every command imports the CLI; pandas (0.3 s), SciPy, Numba, Plotly and scikit-learn are imported where a
    # command uses them, so `voronka --help` or an import does not wait for them.
    code = (
        "import sys, voronka.cli.main, voronka.io.deals, voronka.io.apply; "
        "print(sorted({'pandas', 'scipy', 'numba', 'plotly', 'sklearn', 'statsmodels'} & set(sys.modules)))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert loaded.stdout.strip() == "[]"
