"""The monthly audit (HTML with embedded charts, PDF through Chromium) and the weekly Excel template (opened and
printed by LibreOffice)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import openpyxl
import pytest

from tests.browser import chromium
from tests.cli.conftest import runner_for
from voronka.errors import InputError
from voronka.service.audit import build_audit
from voronka.service.demo import SLOW_MANAGER
from voronka.service.weekly import build_weekly, iso_weeks

END = datetime(2026, 11, 1, tzinfo=UTC)


def _pdf_pages(path: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page[^s]", path.read_bytes()))


def test_audit_html_has_findings_and_offline_charts(demo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report = build_audit(demo, "2026-10", lang="en")
    page = report.html
    assert "Предварительный расчёт" in page and SLOW_MANAGER in page
    assert "The bottleneck is stage" in page
    # Plotly is embedded once (no CDN), and every chart is drawn by it.
    assert page.count("Plotly.newPlot") >= 6
    assert not re.search(r"<script[^>]+src=", page)
    assert "Likely causes" in page and "Cohorts" in page and "Stuck deals" in page
    ru = build_audit(demo, "2026-10", lang="ru").html
    assert "Узкое место" in ru and "Вероятные причины" in ru
    with pytest.raises(InputError, match="YYYY-MM"):
        build_audit(demo, "October")
    with pytest.raises(InputError, match="nothing to audit"):
        build_audit(demo, "2020-01")


def test_audit_pdf_prints(demo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    chromium()  # installed when missing, as the browser tests do
    pdf = build_audit(demo, "2026-10", lang="ru", pipeline="Новые клиенты").write_pdf(tmp_path / "audit.pdf")
    assert pdf.read_bytes().startswith(b"%PDF") and _pdf_pages(pdf) >= 2


def test_iso_weeks() -> None:
    mondays = iso_weeks(datetime(2026, 1, 1, 15, tzinfo=UTC), 2)  # Thursday of ISO week 2026-W01
    assert mondays == [datetime(2025, 12, 22, tzinfo=UTC), datetime(2025, 12, 29, tzinfo=UTC)]


def test_weekly_workbook(demo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "weekly.xlsx"
    result = build_weekly(demo, "Новые клиенты", path, weeks=4, end=END)
    assert result.weeks == ["2026-W41", "2026-W42", "2026-W43", "2026-W44"]
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames[0] == "Итого" and SLOW_MANAGER in wb.sheetnames and len(wb.sheetnames) == 7
    total = wb["Итого"]
    assert [total.cell(3, c).value for c in (2, 3, 4)] == ["План", "Факт", "% плана"]
    assert total["A4"].value == "Заявка"
    assert total["D4"].value == '=IF(N(B4)>0,C4/B4,"")'
    # The total is the sum of the managers' sheets, for every count row and week.
    for row in range(4, 9):
        for col in (3, 6, 9, 12):
            parts = sum(wb[m].cell(row, col).value or 0 for m in wb.sheetnames[1:])
            assert total.cell(row, col).value == parts
    # Leads of the week = deals that entered the first stage in it, as the funnel counts them.
    w44 = demo.funnel("Новые клиенты", start="2026-10-26", end="2026-11-02").overall.entered
    assert total.cell(4, 12).value == w44


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) is not installed")
def test_weekly_opens_in_libreoffice(demo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "weekly.xlsx"
    build_weekly(demo, "Новые клиенты", path, weeks=8, end=END, lang="en")
    done = subprocess.run(
        [
            "soffice",
            "--headless",
            "--norestore",
            f"-env:UserInstallation={(tmp_path / 'lo').as_uri()}",
            "--convert-to",
            "pdf",
            "--outdir",
            str(tmp_path),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    pdf = tmp_path / "weekly.pdf"
    assert done.returncode == 0 and pdf.exists(), done.stderr
    assert _pdf_pages(pdf) == 7  # one landscape page per sheet: the total and six managers
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(pdf), "-"], capture_output=True, text=True)
        assert "Total" in text.stdout and "2026-W44" in text.stdout and "% of plan" in text.stdout


def test_cli_reports(demo_path: Path, tmp_path: Path) -> None:
    run = runner_for(f"sqlite:///{demo_path}")
    html = tmp_path / "a.html"
    data = json.loads(run("report", "audit", "--month", "2026-10", "--html", str(html), "--format", "json").output)
    assert html.exists() and data["diagnoses"][0]["bottleneck"] == "Предварительный расчёт"
    xlsx = tmp_path / "w.xlsx"
    out = run("report", "weekly", "--xlsx", str(xlsx), "--end", "2026-10-31").output
    assert "7 sheets" in out and xlsx.exists()
    csv = run("report", "weekly", "--xlsx", str(xlsx), "--weeks", "2", "--format", "csv").output
    assert csv.splitlines()[0].startswith("metric,")
    assert "--weeks" in run("report", "weekly", "--xlsx", str(xlsx), "--weeks", "0", code=1).output


def _soffice(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    profile = f"-env:UserInstallation={(tmp_path / 'lo').as_uri()}"
    cmd = ["soffice", "--headless", "--norestore", profile, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


def test_weekly_plan_file_fills_the_plan(demo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plan = tmp_path / "plan.csv"
    plan.write_text('sheet,metric,week,plan\nИтого,Заявка,2026-W44,40\nИтого,Выручка,2026-W44,"3 000 000"\n')
    path = tmp_path / "weekly.xlsx"
    result = build_weekly(demo, "Новые клиенты", path, weeks=2, end=END, plan=plan)
    total = openpyxl.load_workbook(path)["Итого"]
    fact = result.sheets["Итого"].loc["Заявка", "2026-W44"]
    assert total["E4"].value == 40 and total["F4"].value == fact and total["G4"].value.startswith("=IF(")
    if shutil.which("soffice"):
        # LibreOffice computes the % of plan from the formula.
        done = _soffice(
            ["--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76", "--outdir", str(tmp_path), str(path)], tmp_path
        )
        assert done.returncode == 0, done.stderr
        rows = (tmp_path / "weekly.csv").read_text(encoding="utf-8").splitlines()
        lead = next(r for r in rows if r.startswith("Заявка,"))
        shown = lead.split(",")[6]  # "93%": the cell's 0% format
        assert shown.endswith("%") and abs(float(shown[:-1]) / 100 - fact / 40) <= 0.005 + 1e-9
    bad = tmp_path / "bad.csv"
    bad.write_text("sheet,metric,week,plan\nИтого,Заявка,2027-W01,1\n")
    with pytest.raises(InputError, match="week '2027-W01'"):
        build_weekly(demo, "Новые клиенты", path, weeks=2, end=END, plan=bad)
    bad.write_text("sheet,metric,plan\n")
    with pytest.raises(InputError, match="missing column"):
        build_weekly(demo, "Новые клиенты", path, weeks=2, end=END, plan=bad)
