"""On the demo workspace the planted effects are found, and nothing else is flagged."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import runner_for
from voronka.service import reports
from voronka.service.demo import NEW_CLIENTS, SLOW_MANAGER
from voronka.service.workspace import Workspace

BOTTLENECK = "Предварительный расчёт"


def test_diagnose_names_the_planted_bottleneck_and_the_slow_manager(demo: Workspace) -> None:
    r = reports.diagnose(demo, NEW_CLIENTS.name)  # its speed is measured in bench/diagnose.py
    assert r.bottleneck == BOTTLENECK
    assert r.stages.ranked()[0].stage == BOTTLENECK
    top = r.stages.ranked()[0]
    assert 0 < top.extra_revenue_low < top.extra_revenue < top.extra_revenue_high
    assert 0 < top.extra_won_low < top.extra_won < top.extra_won_high
    assert top.p_biggest >= 0.95
    # Only the slow manager, only at the first stage.
    assert r.flagged_managers == [{"manager": SLOW_MANAGER, "stage": NEW_CLIENTS.stages[0], "flag": "low"}]
    assert r.slow_managers == [SLOW_MANAGER]
    assert r.time_bottleneck is None


def test_hints_carry_measured_evidence(demo: Workspace) -> None:
    r = reports.diagnose(demo, NEW_CLIENTS.name)
    ids = {(h.id, h.stage, h.manager) for h in r.hints}
    assert ("late_callback", NEW_CLIENTS.stages[0], SLOW_MANAGER) in ids
    assert ("price_expectations", BOTTLENECK, None) in ids
    late = next(h for h in r.hints if h.id == "late_callback")
    assert late.numbers["median_hours_to_first_call"] > 12  # he calls back after about a day
    assert r.managers.team_median_hours is not None and r.managers.team_median_hours < 3
    for h in r.hints:
        assert h.title["ru"] and h.title["en"] and h.evidence["ru"] and h.evidence["en"]
    assert any("Предварительный расчёт" in line for line in r.findings["ru"])
    assert any(SLOW_MANAGER in line for line in r.findings["en"])


def test_win_back_pipeline_flags_nothing(demo: Workspace) -> None:
    # No effect is planted in the other funnels. (In "Повторные продажи" the demo's seed happens to give one
    # manager 37 of 67 at the last stage against ~80% for the rest, p = 4e-5: a real extreme of the draw, which
    # the funnel plot rightly flags; see docs/diagnosis.md.)
    r = reports.diagnose(demo, "Возврат клиентов")
    assert r.flagged_managers == []
    assert r.slow_managers == []


def test_cli_diagnose_json_names_the_bottleneck(demo_path: Path) -> None:
    run = runner_for(f"sqlite:///{demo_path}")
    data = json.loads(run("diagnose", NEW_CLIENTS.name, "--format", "json").output)
    assert data["bottleneck"] == BOTTLENECK
    assert data["slow_managers"] == [SLOW_MANAGER]
    text = run("diagnose", "1", "--lang", "en").output
    assert "bottleneck" in text and SLOW_MANAGER in text
    csv = run("diagnose", "1", "--format", "csv").output
    assert csv.splitlines()[0].startswith("stage,")
    managers = json.loads(run("managers", "1", "--format", "json").output)
    assert [r["manager"] for r in managers["rows"] if r["flag"]] == [SLOW_MANAGER]


def test_cli_diagnose_benchmarks(demo_path: Path) -> None:
    run = runner_for(f"sqlite:///{demo_path}")
    for bench in ("manager", "quarter"):
        data = json.loads(run("diagnose", "1", "--benchmark", bench, "--format", "json").output)
        assert all(s["extra_revenue_low"] >= 0 for s in data["stages"]["stages"])
    data = json.loads(
        run("diagnose", "1", "--benchmark", "target", "--target", "Заявка=0.99", "--format", "json").output
    )
    gains = {s["stage"]: s["extra_won"] for s in data["stages"]["stages"]}
    assert gains["Заявка"] > 0 and gains[BOTTLENECK] == 0


def test_cli_diagnose_bad_input(demo_path: Path) -> None:
    run = runner_for(f"sqlite:///{demo_path}")
    assert "benchmark" in run("diagnose", "1", "--benchmark", "best", code=1).output
    assert "STAGE=RATE" in run("diagnose", "1", "--benchmark", "target", "--target", "nope", code=1).output
    assert "unknown stage" in run("diagnose", "1", "--benchmark", "target", "--target", "X=0.5", code=1).output
    assert "--lang" in run("diagnose", "1", "--lang", "de", code=1).output
    assert "Error:" in run("diagnose", "No such pipeline", code=1).output
