"""`voronka diagnose`, `managers`, `compare`, `abtest`, `kpi`, `cohorts` and `voronka report audit|weekly`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.table import Table

from voronka.cli._common import FORMAT_OPTION, Format, ci, guard, out, pct, print_csv, print_json, workspace
from voronka.errors import InputError

if TYPE_CHECKING:  # the reports import SciPy and friends: load them only when a command here runs
    from types import ModuleType

    from voronka.analytics.diagnosis.abtest import ABTestResult
    from voronka.analytics.diagnosis.cohorts import CohortResult
    from voronka.analytics.diagnosis.compare import CompareResult
    from voronka.analytics.diagnosis.diagnose import DiagnosisResult
    from voronka.analytics.diagnosis.kpi import KPIResult
    from voronka.analytics.diagnosis.managers import ManagersResult


def _svc() -> ModuleType:
    from voronka.service import reports

    return reports


LANG_OPTION = typer.Option("ru", "--lang", help="Language of findings and hints: ru or en.")


report_app = typer.Typer(help="Reports: the monthly audit (HTML/PDF) and the weekly statistics template (Excel).")


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")
    app.command("diagnose")(diagnose)
    app.command("managers")(managers)
    app.command("compare")(compare)
    app.command("abtest")(abtest)
    app.command("kpi")(kpi)
    app.command("cohorts")(cohorts)


def _lang(lang: str) -> str:
    if lang not in ("ru", "en"):
        raise InputError(f"--lang {lang!r}: use ru or en.")
    return lang


def _targets(items: list[str] | None) -> dict[str, float] | None:
    if not items:
        return None
    out_: dict[str, float] = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            out_[name] = float(value.rstrip("%")) / (100 if value.endswith("%") else 1)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise InputError(f"--target {item!r}: write STAGE=RATE, e.g. --target 'Предварительный расчёт=0.5'.")
    return out_


@guard
def diagnose(
    pipeline: str = typer.Argument(..., help="Pipeline name or id."),
    from_: str = typer.Option(None, "--from", help="Deals that entered on or after this date (ISO)."),
    to: str = typer.Option(None, "--to", help="... and before this date (ISO)."),
    benchmark: str = typer.Option("lift", help="What a stage could reach: lift, manager, quarter or target."),
    lift: float = typer.Option(0.2, help="With --benchmark lift: the share of a stage's losses it recovers."),
    target: list[str] = typer.Option(None, help="With --benchmark target: STAGE=RATE, repeatable."),
    certainty: float = typer.Option(0.95, help="Name a bottleneck only when this sure it is the biggest."),
    fdr: float = typer.Option(0.05, help="False discovery rate for flagging managers."),
    lang: str = LANG_OPTION,
    fmt: Format = FORMAT_OPTION,
) -> None:
    """The bottleneck and what it costs, managers on a funnel plot, and hints from the seeds."""
    lang = _lang(lang)
    result = _svc().diagnose(
        workspace(),
        pipeline,
        start=from_,
        end=to,
        benchmark=benchmark,  # type: ignore[arg-type]
        lift=lift,
        targets=_targets(target),
        certainty=certainty,
        fdr=fdr,
    )
    if fmt is Format.json:
        return print_json(result.to_dict())
    if fmt is Format.csv:
        return print_csv(result.to_pandas())
    render_diagnosis(result, lang)


def _money(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}".replace(",", " ")


def render_diagnosis(r: DiagnosisResult, lang: str) -> None:
    c = out()
    b = r.stages
    c.print(f"\n[bold]Diagnosis of {r.pipeline!r}[/bold] — {b.deals} deals, benchmark: {b.benchmark}")
    t = Table(
        "Stage",
        "Decided",
        "Conv. [95% CI]",
        "Benchmark",
        "Extra won [95%]",
        f"Extra revenue {r.currency} [95%]",
        "P(biggest)",
        "Time: over SLA",
    )
    times = {x.stage: x for x in b.time}
    for s in b.ranked():
        tm = times[s.stage]
        mark = " ◀ bottleneck" if s.stage == r.bottleneck else ""
        t.add_row(
            s.stage + mark,
            str(s.decided),
            f"{pct(s.rate)} {ci(s.ci_low, s.ci_high)}",
            f"{pct(s.benchmark)} ({s.benchmark_from})",
            f"{s.extra_won:.0f} [{s.extra_won_low:.0f}–{s.extra_won_high:.0f}]",
            f"{_money(s.extra_revenue)} [{_money(s.extra_revenue_low)}–{_money(s.extra_revenue_high)}]",
            f"{s.p_biggest:.0%}",
            "—" if tm.share_over_sla is None else f"{pct(tm.share_over_sla)} of {tm.stays}",
        )
    c.print(t)
    for line in r.findings[lang]:
        c.print(f"• {line}")
    for h in r.hints:
        c.print(f"\n[bold]{h.title[lang]}[/bold] ({h.stage}{', ' + h.manager if h.manager else ''})")
        c.print(f"  {h.evidence[lang]}")
        for cause in h.causes[lang]:
            c.print(f"  – {cause}")
        for act in h.actions[lang]:
            c.print(f"  → {act}")


@guard
def managers(
    pipeline: str = typer.Argument(..., help="Pipeline name or id."),
    from_: str = typer.Option(None, "--from", help="Deals that entered on or after this date (ISO)."),
    to: str = typer.Option(None, "--to", help="... and before this date (ISO)."),
    fdr: float = typer.Option(0.05, help="False discovery rate for flagging managers."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Managers on a funnel plot: rate against sample size with control limits, shrunk rates, speed to lead."""
    result = _svc().managers(workspace(), pipeline, start=from_, end=to, fdr=fdr)
    if fmt is Format.json:
        return print_json(result.to_dict())
    if fmt is Format.csv:
        return print_csv(result.to_pandas())
    render_managers(result)


def render_managers(r: ManagersResult) -> None:
    c = out()
    c.print(f"\n[bold]Managers of {r.pipeline!r}[/bold] (flags: BH at FDR {r.fdr:.0%} and outside 99.8% limits)")
    t = Table("Manager", "Stage", "Decided", "Rate [95% CI]", "Shrunk", "Centre", "99.8% limits", "q", "Flag")
    for x in r.rows:
        t.add_row(
            x.manager,
            x.stage,
            str(x.decided),
            f"{pct(x.rate)} {ci(x.ci_low, x.ci_high)}",
            pct(x.shrunk),
            pct(x.centre),
            ci(x.limit998_low, x.limit998_high),
            "" if x.q_value is None else f"{x.q_value:.2g}",
            x.flag or "",
        )
    c.print(t)
    if r.speed:
        s = Table("Manager", "Deals with a call", "Median h to 1st call", "P90 h", "q", "Slow")
        for x in r.speed:
            s.add_row(
                x.manager,
                str(x.deals_with_call),
                f"{x.median_hours:.1f}",
                f"{x.p90_hours:.1f}",
                "" if x.q_value is None else f"{x.q_value:.2g}",
                "slow" if x.slow else "",
            )
        c.print(s)


@guard
def compare(
    pipeline: str = typer.Argument(..., help="Pipeline name or id."),
    period: str = typer.Option(..., "--period", help="The period to check: a month YYYY-MM or FROM:TO."),
    vs: str = typer.Option(None, "--vs", help="The period to compare with; default the one just before."),
    age: float = typer.Option(30, "--age", help="Look at every deal this many days after it entered."),
    by: str = typer.Option("source", help="Breakdown for the mix/rate split: source, segment or owner."),
    fdr: float = typer.Option(0.05, help="False discovery rate over stages × groups."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Is the change real? Period over period per stage, cohorts of equal age, mix vs rate, BH-controlled."""
    result = _svc().compare(workspace(), pipeline, period, vs=vs, age_days=age, by=by, fdr=fdr)
    if fmt is Format.json:
        return print_json(result.to_dict())
    if fmt is Format.csv:
        return print_csv(result.to_pandas())
    render_compare(result)


def render_compare(r: CompareResult) -> None:
    c = out()
    (a0, a1), (b0, b1) = r.period_a, r.period_b
    c.print(
        f"\n[bold]{r.pipeline!r}: {b0.date()}–{b1.date()} vs {a0.date()}–{a1.date()}[/bold] at age {r.age_days:g} d "
        f"— deals {r.deals_b} vs {r.deals_a} (too young, left out: {r.too_young_b} and {r.too_young_a})"
    )
    t = Table("Stage", "Group", "Before", "After", "Change [95% CI]", "q", "Real?")
    for x in r.rows:
        if x.group != "(all)" and not x.significant:
            continue
        t.add_row(
            x.stage,
            x.group,
            f"{pct(x.rate_a)} (n={x.reached_a})",
            f"{pct(x.rate_b)} (n={x.reached_b})",
            "—" if x.change is None else f"{x.change:+.1%} [{x.ci_low:+.1%}…{x.ci_high:+.1%}]",
            "" if x.q_value is None else f"{x.q_value:.2g}",
            "yes" if x.significant else "no (noise)",
        )
    c.print(t)
    if r.total_change is not None:
        c.print(
            f"End-to-end change {r.total_change:+.1%} = mix effect {r.mix_effect:+.1%} (share of each {r.by} "
            f"changed) + rate effect {r.rate_effect:+.1%} (each {r.by} converted differently)."
        )
    c.print(f"[dim]Significant changes after BH at FDR {r.fdr:.0%}: {len(r.significant)}.[/dim]")


@guard
def abtest(
    pipeline: str = typer.Argument(..., help="Pipeline name or id."),
    variant: str = typer.Option(None, "--variant", help="Deal field whose values are the variants."),
    range_: list[str] = typer.Option(None, "--range", help="A variant by entry dates: NAME=FROM:TO, repeatable."),
    only: list[str] = typer.Option(None, "--only", help="Use only these values of the field (first = control)."),
    stage: str = typer.Option(None, help="Judge by this stage's conversion instead of end to end."),
    certainty: float = typer.Option(0.95, help="Declare a winner only when this sure."),
    max_loss: float = typer.Option(0.005, "--max-loss", help="... and choosing it costs at most this in expectation."),
    lang: str = LANG_OPTION,
    fmt: Format = FORMAT_OPTION,
) -> None:
    """A/B test: per-stage and end-to-end conversion per variant, the verdict with certainty and expected loss."""
    lang = _lang(lang)
    result = _svc().abtest(
        workspace(),
        pipeline,
        by=variant,
        ranges=range_ or None,
        variants=only or None,
        stage=stage,
        certainty=certainty,
        max_loss=max_loss,
    )
    if fmt is Format.json:
        return print_json(result.to_dict())
    if fmt is Format.csv:
        return print_csv(result.to_pandas())
    render_abtest(result, lang)


def render_abtest(r: ABTestResult, lang: str) -> None:
    c = out()
    c.print(
        f"\n[bold]A/B test in {r.pipeline!r} by {r.by}[/bold]: "
        + ", ".join(f"{v} ({r.deals[v]} deals)" for v in r.variants)
    )
    stages = list(dict.fromkeys(x.stage for x in r.rows))
    t = Table("Stage", *r.variants)
    for st in stages:
        cells = {x.variant: x for x in r.rows if x.stage == st}
        t.add_row(
            st,
            *[f"{pct(cells[v].rate)} {ci(cells[v].ci_low, cells[v].ci_high)} n={cells[v].decided}" for v in r.variants],
        )
    c.print(t)
    for v in r.verdicts:
        c.print(f"• {v.text[lang]}")


@guard
def kpi(
    pipeline: str = typer.Argument(None, help="Pipeline name or id; default the new-client pipelines."),
    from_: str = typer.Option(None, "--from", help="Deals that entered on or after this date (ISO)."),
    to: str = typer.Option(None, "--to", help="... and before this date (ISO)."),
    margin: float = typer.Option(1.0, help="Gross margin share for ROMI, LTV, payback (1 = revenue)."),
    churn: float = typer.Option(None, help="Monthly churn of clients, for LTV = ARPA × margin / churn."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """KPIs by channel and month: CPL, CAC, ROMI, average deal, win rate, cycle, velocity, LTV, CAC payback."""
    result = _svc().kpi(workspace(), pipeline, start=from_, end=to, margin=margin, churn=churn)
    if fmt is Format.json:
        return print_json(result.to_dict())
    if fmt is Format.csv:
        return print_csv(result.to_pandas())
    render_kpi(result)


def render_kpi(r: KPIResult) -> None:
    c = out()
    c.print(f"\n[bold]KPIs[/bold] of {', '.join(r.pipelines)}")
    t = Table(
        "Channel",
        "Month",
        "Leads",
        "Won",
        "Revenue",
        "Cost",
        "CPL",
        "CAC",
        "ROMI",
        "Avg deal",
        "Win rate [95% CI]",
        "Cycle d",
        "Velocity/mo",
        "LTV",
        "Payback",
    )
    for x in r.rows:
        payback = (
            f"{x.cac_payback_months:.1f} mo"
            if x.cac_payback_months is not None
            else ("" if x.cac_payback_deals is None else f"{x.cac_payback_deals:.2f} deals")
        )
        t.add_row(
            x.channel,
            x.month,
            str(x.leads),
            str(x.won),
            _money(x.revenue),
            _money(x.cost),
            _money(x.cpl),
            _money(x.cac),
            "—" if x.romi is None else f"{x.romi:.0%}",
            _money(x.avg_deal),
            f"{pct(x.win_rate)} {ci(x.win_rate_low, x.win_rate_high)}",
            "—" if x.cycle_days is None else f"{x.cycle_days:.1f}",
            _money(x.velocity_per_month),
            _money(x.ltv),
            payback,
        )
    c.print(t)
    for a in r.assumptions:
        c.print(f"[dim]Assumption: {a}[/dim]")
    for ch, amount in r.unmatched_costs.items():
        c.print(f"[yellow]Costs of channel {ch!r} ({_money(amount)}) match no deal source.[/yellow]")


@guard
def cohorts(
    pipeline: str = typer.Argument(..., help="Pipeline name or id."),
    unit: str = typer.Option("month", help="Cohorts by entry week or month."),
    value: str = typer.Option("conversion", help="What the table shows: conversion, won or revenue."),
    html: str = typer.Option(None, "--html", help="Also write the Plotly heatmap to this HTML file."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Cohorts: entry week/month × periods since entry → cumulative conversion and revenue (table, heatmap)."""
    if value not in ("conversion", "won", "revenue"):
        raise InputError(f"--value {value!r}: use conversion, won or revenue.")
    result = _svc().cohorts(workspace(), pipeline, unit=unit)
    if html:
        result.heatmap(value).write_html(html, include_plotlyjs=True)
    if fmt is Format.json:
        return print_json(result.to_dict())
    if fmt is Format.csv:
        return print_csv(result.to_pandas())
    render_cohorts(result, value)


def render_cohorts(r: CohortResult, value: str) -> None:
    c = out()
    grid = r.pivot(value)
    c.print(f"\n[bold]Cohorts of {r.pipeline!r}[/bold] by {r.unit} of entry: {value} by {r.unit}s since entry")
    if grid.empty:
        c.print("No deals.")
        return
    sizes = r.to_pandas().groupby("cohort")["size"].first()
    t = Table("Cohort", "Deals", *[str(a) for a in grid.columns])
    for cohort, row in grid.iterrows():
        cells = ["" if v != v else (f"{v:.0%}" if value == "conversion" else _money(v)) for v in row]
        t.add_row(str(cohort), str(sizes[cohort]), *cells)
    c.print(t)


@report_app.command("audit")
@guard
def report_audit(
    month: str = typer.Option(..., "--month", help="The month to audit, YYYY-MM."),
    html_path: str = typer.Option(None, "--html", help="Write the HTML report here (default audit-MONTH.html)."),
    pdf: str = typer.Option(None, "--pdf", help="Also print it to this PDF (needs Chromium)."),
    pipeline: str = typer.Option(None, "--pipeline", help="Only this pipeline (default all)."),
    lang: str = LANG_OPTION,
    fmt: Format = FORMAT_OPTION,
) -> None:
    """The monthly audit: bottlenecks, managers, real changes, cohorts, KPIs, stuck deals, findings in words."""
    from voronka.service.audit import build_audit

    report = build_audit(workspace(), month, lang=_lang(lang), pipeline=pipeline)
    path = report.write_html(html_path or f"audit-{month}.html")
    pdf_path = report.write_pdf(pdf) if pdf else None
    if fmt is Format.json:
        return print_json(
            {
                "month": month,
                "html": str(path),
                "pdf": None if pdf_path is None else str(pdf_path),
                "findings": report.findings,
                "diagnoses": [d.to_dict() for d in report.diagnoses],
            }
        )
    if fmt is Format.csv:
        import pandas as pd

        return print_csv(pd.DataFrame({"finding": report.findings}))
    c = out()
    for line in report.findings:
        c.print(f"• {line}")
    c.print(f"HTML: {path}" + (f"  PDF: {pdf_path}" if pdf_path else ""))


@report_app.command("weekly")
@guard
def report_weekly(
    pipeline: str = typer.Argument(None, help="Pipeline name or id; default the first new-client pipeline."),
    xlsx: str = typer.Option(..., "--xlsx", help="Write the Excel workbook here."),
    weeks: int = typer.Option(8, help="How many ISO weeks, up to the current one."),
    end: str = typer.Option(None, "--end", help="The last week is the one containing this date (default today)."),
    plan: str = typer.Option(None, "--plan", help="CSV/XLSX with sheet, metric, week, plan to fill the plan columns."),
    lang: str = LANG_OPTION,
    fmt: Format = FORMAT_OPTION,
) -> None:
    """The weekly statistics template: a sheet per manager plus the total; stages and metrics × ISO weeks with
    plan, fact and % of plan."""
    from voronka.cli._common import when
    from voronka.domain.pipeline import ProcessKind
    from voronka.service.weekly import build_weekly

    ws = workspace()
    if pipeline is None:
        pipes = ws.pipelines()
        if not pipes:
            raise InputError("The workspace has no pipelines: nothing to put in the weekly template.")
        pipeline = next((p.name for p in pipes if p.process is ProcessKind.NEW_CLIENTS), pipes[0].name)
    result = build_weekly(ws, pipeline, xlsx, weeks=weeks, end=when(end, "--end date"), lang=_lang(lang), plan=plan)
    if fmt is Format.json:
        return print_json(
            {
                "pipeline": result.pipeline,
                "xlsx": str(result.path),
                "weeks": result.weeks,
                "sheets": {k: v.reset_index().to_dict(orient="records") for k, v in result.sheets.items()},
            }
        )
    if fmt is Format.csv:
        import pandas as pd

        frames = [v.reset_index(names="metric").assign(sheet=k) for k, v in result.sheets.items()]
        return print_csv(pd.concat(frames, ignore_index=True))
    out().print(
        f"Weekly template of {result.pipeline!r}: {len(result.sheets)} sheets, weeks {result.weeks[0]}…"
        f"{result.weeks[-1]} → {result.path}"
    )
