"""The weekly statistics template (seed 004): an Excel workbook with one sheet per manager plus the total.

Rows are the stages and metrics: deals that reached each open stage in the week (leads = the first stage),
payments (deals won in the week), revenue and the average deal of those payments, and the week's conversions
from each stage to the next (the week's count at the next stage over its count at this one — a flow ratio, not
a cohort conversion). Columns are ISO weeks (Monday to Sunday, UTC), three per week: *plan* (left empty, to be
filled in, or taken from a plan file; yellow), *fact* (computed from the move log) and *% of plan* (an Excel
formula, so it updates when the plan is typed in).

A plan file (CSV or XLSX) has the columns ``sheet`` (a manager's name, or Итого / Total), ``metric`` (a row label
as in the workbook: a stage name, or the payments / revenue row), ``week`` (``2026-W44``) and ``plan``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

from voronka.analytics.diagnosis.deals import DealTable, load_deals
from voronka.errors import InputError

TOTAL = {"ru": "Итого", "en": "Total"}
LABELS = {
    "ru": {
        "metric": "Показатель",
        "plan": "План",
        "fact": "Факт",
        "pct": "% плана",
        "payments": "Оплаты (выиграно)",
        "revenue": "Выручка",
        "avg": "Средний чек",
        "conv": "Конверсия",
        "week": "Неделя",
    },
    "en": {
        "metric": "Metric",
        "plan": "Plan",
        "fact": "Fact",
        "pct": "% of plan",
        "payments": "Payments (won)",
        "revenue": "Revenue",
        "avg": "Average deal",
        "conv": "Conversion",
        "week": "Week",
    },
}
PLAN_FILL = PatternFill("solid", fgColor="FFF2CC")
HEAD_FILL = PatternFill("solid", fgColor="DDEBF7")
THIN = Border(bottom=Side(style="thin", color="BBBBBB"))


@dataclass
class WeeklyTemplate:
    pipeline: str
    weeks: list[str]
    sheets: dict[str, pd.DataFrame]  # sheet name -> metrics × weeks (facts)
    path: Path


def iso_weeks(end: datetime, count: int) -> list[datetime]:
    """Mondays (00:00 UTC) of the ``count`` ISO weeks up to the one containing ``end`` (exclusive of later)."""
    monday = (end - timedelta(days=end.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    return [monday - timedelta(weeks=k) for k in range(count - 1, -1, -1)]


def weekly_facts(table: DealTable, mondays: list[datetime], lang: str) -> pd.DataFrame:
    """Rows: stage counts, payments, revenue, average deal, conversions; columns: week labels."""
    f, n = table.frame, table.n_open
    names = table.stage_names
    lab = LABELS[lang]
    cols: dict[str, list[float | None]] = {}
    for monday in mondays:
        start, end = pd.Timestamp(monday), pd.Timestamp(monday + timedelta(weeks=1))
        counts = [int(((f[f"reach_{k}"] >= start) & (f[f"reach_{k}"] < end)).sum()) for k in range(n)]
        won = (f["status"] == "won") & (f[f"reach_{n}"] >= start) & (f[f"reach_{n}"] < end)
        payments = int(won.sum())
        revenue = float(f.loc[won, "amount"].fillna(0).sum())
        conv = [(counts[k + 1] if k + 1 < n else payments) / counts[k] if counts[k] else None for k in range(n)]
        iso = monday.isocalendar()
        cols[f"{iso.year}-W{iso.week:02d}"] = [
            *counts,
            payments,
            revenue,
            revenue / payments if payments else None,
            *conv,
        ]
    index = (
        list(names[:n])
        + [lab["payments"], lab["revenue"], lab["avg"]]
        + [f"{lab['conv']} {names[k]} → {names[k + 1] if k + 1 < n else lab['payments']}" for k in range(n)]
    )
    return pd.DataFrame(cols, index=index)


def build_weekly(
    ws: Any,
    pipeline: str | int,
    path: str | Path,
    *,
    weeks: int = 8,
    end: datetime | None = None,
    lang: str = "ru",
    plan: str | Path | None = None,
) -> WeeklyTemplate:
    """Write the weekly template for ``pipeline``: the last ``weeks`` ISO weeks up to ``end`` (default now)."""
    if lang not in LABELS:
        raise InputError(f"--lang {lang!r}: use ru or en.")
    if not 1 <= weeks <= 104:
        raise InputError(f"--weeks {weeks!r} must be between 1 and 104.")
    table = load_deals(ws, pipeline)
    mondays = iso_weeks(end or datetime.now(UTC), weeks)
    sheets = {TOTAL[lang]: weekly_facts(table, mondays, lang)}
    for owner in sorted(set(table.frame["owner"])):
        sub = DealTable(table.pipeline, table.frame[table.frame["owner"] == owner].reset_index(drop=True))
        sheets[owner] = weekly_facts(sub, mondays, lang)
    plans = read_plan(plan, sheets) if plan is not None else {}
    out = Path(path)
    _write(sheets, table.pipeline.name, out, lang, plans)
    return WeeklyTemplate(table.pipeline.name, list(sheets[TOTAL[lang]].columns), sheets, out)


def _sheet_name(name: str, used: set[str]) -> str:
    base = "".join("_" if c in "[]:*?/\\" else c for c in name)[:31] or "Sheet"
    cand, i = base, 2
    while cand in used:
        cand = f"{base[:28]}~{i}"
        i += 1
    used.add(cand)
    return cand


def read_plan(path: str | Path, sheets: dict[str, pd.DataFrame]) -> dict[tuple[str, str, str], float]:
    """The plan file as {(sheet, metric, week): plan}; unknown sheets, metrics or weeks are refused."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"Plan file {str(p)!r} does not exist.")
    frame = pd.read_excel(p) if p.suffix.lower() in (".xlsx", ".xlsm") else pd.read_csv(p, sep=None, engine="python")
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = {"sheet", "metric", "week", "plan"} - set(frame.columns)
    if missing:
        raise InputError(
            f"Plan file {p.name}: missing column(s) {', '.join(sorted(missing))}; it needs sheet, metric, week, plan."
        )
    out: dict[tuple[str, str, str], float] = {}
    for i, r in enumerate(frame.itertuples(index=False), start=2):
        sheet, metric, week = str(r.sheet).strip(), str(r.metric).strip(), str(r.week).strip()
        facts = sheets.get(sheet)
        if facts is None:
            raise InputError(
                f"Plan file {p.name}, row {i}: sheet {sheet!r} is not a manager here ({', '.join(sheets)})."
            )
        if metric not in facts.index:
            raise InputError(f"Plan file {p.name}, row {i}: metric {metric!r} is not a row ({', '.join(facts.index)}).")
        if week not in facts.columns:
            raise InputError(
                f"Plan file {p.name}, row {i}: week {week!r} is not in the workbook ({', '.join(facts.columns)})."
            )
        try:
            out[(sheet, metric, week)] = float(str(r.plan).replace(",", ".").replace(" ", ""))
        except ValueError:
            raise InputError(f"Plan file {p.name}, row {i}: plan {r.plan!r} is not a number.") from None
    return out


def _write(
    sheets: dict[str, pd.DataFrame],
    pipeline: str,
    path: Path,
    lang: str,
    plans: dict[tuple[str, str, str], float] | None = None,
) -> None:
    lab = LABELS[lang]
    wb = Workbook()
    wb.remove(wb.active)
    used: set[str] = set()
    for name, facts in sheets.items():
        ws = wb.create_sheet(_sheet_name(name, used))
        ws["A1"] = f"{pipeline} — {name}"
        ws["A1"].font = Font(bold=True, size=13)
        ws.cell(row=2, column=1, value=lab["week"]).font = Font(bold=True)
        ws.cell(row=3, column=1, value=lab["metric"]).font = Font(bold=True)
        money_rows = {lab["revenue"], lab["avg"]}
        for w, week in enumerate(facts.columns):
            col = 2 + 3 * w
            ws.merge_cells(start_row=2, start_column=col, end_row=2, end_column=col + 2)
            head = ws.cell(row=2, column=col, value=week)
            head.alignment = Alignment(horizontal="center")
            head.font, head.fill = Font(bold=True), HEAD_FILL
            for j, key in enumerate(("plan", "fact", "pct")):
                c = ws.cell(row=3, column=col + j, value=lab[key])
                c.font, c.fill, c.alignment = Font(bold=True), HEAD_FILL, Alignment(horizontal="center")
            for i, (metric, value) in enumerate(facts[week].items()):
                r = 4 + i
                ws.cell(row=r, column=1, value=metric).border = THIN
                plan = ws.cell(row=r, column=col, value=(plans or {}).get((name, str(metric), str(week))))
                plan.fill = PLAN_FILL
                fact = ws.cell(row=r, column=col + 1, value=None if pd.isna(value) else float(value))
                p, fa = get_column_letter(col), get_column_letter(col + 1)
                pct = ws.cell(row=r, column=col + 2, value=f'=IF(N({p}{r})>0,{fa}{r}/{p}{r},"")')
                pct.number_format = "0%"
                is_conv = metric.startswith(lab["conv"])
                fact.number_format = "0.0%" if is_conv else ("#,##0" if metric in money_rows else "0")
                plan.number_format = fact.number_format
                for cell in (plan, fact, pct):
                    cell.border = THIN
        ws.column_dimensions["A"].width = max(28, max(len(str(m)) for m in facts.index) + 2)
        for k in range(2, 2 + 3 * len(facts.columns)):
            ws.column_dimensions[get_column_letter(k)].width = 11
        ws.freeze_panes = "B4"
        ws.page_setup.orientation = "landscape"
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.print_title_cols = "A:A"
    wb.save(path)
