"""`voronka plan set|show|need`: plans, plan vs fact, and the reverse plan (leads a target needs)."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from voronka.analytics.forecast.reverse import NeedResult
from voronka.cli._common import FORMAT_OPTION, Format, guard, out, pct, print_csv, print_json, workspace
from voronka.cli.forecast import money
from voronka.domain.parse import parse_amount
from voronka.service.plans import PlanFactResult

app = typer.Typer(help="Plans, plan vs fact, and the leads a revenue target needs.", no_args_is_help=True)


@app.command("set")
@guard
def set_(
    metric: str = typer.Option("revenue", "--metric", help="revenue, won, leads or activities."),
    period: str = typer.Option("month", "--period", help="week, month or quarter."),
    start: str = typer.Option(None, "--start", help="A day in the period: 2026-12-07, 2026-12 or 2026-Q4."),
    target: str = typer.Option(..., "--target", help="The target: an amount for revenue, a count otherwise."),
    pipeline: str = typer.Option(None, "--pipeline", help="The pipeline; default all pipelines."),
    owner: str = typer.Option(None, "--owner", help="A manager; default the whole team."),
    currency: str = typer.Option(None, "--currency", help="The currency of a revenue plan (default RUB)."),
) -> None:
    """Set the plan of a metric for a period (replacing the one there was)."""
    p = workspace().set_plan(metric, period, start, target, pipeline=pipeline, owner=owner, currency=currency)
    who = p.owner or "the team"
    where = p.pipeline or "all pipelines"
    amount = f"{money(p.target)} {p.currency}".strip()
    out().print(f"Plan set: {p.metric} {amount} for {p.period} {p.start}–{p.end}, {who}, {where}")


@app.command("show")
@guard
def show(
    period: str = typer.Option("month", "--period", help="week, month or quarter."),
    start: str = typer.Option(None, "--start", help="A day in the period (default today)."),
    pipeline: str = typer.Option(None, "--pipeline", help="Only plans of this pipeline (and of all pipelines)."),
    now: str = typer.Option(None, "--now", help="Count the fact up to this time (default now)."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Plan vs fact for a period: % done, run-rate projection, weekly table, managers side by side."""
    r = workspace().plan_fact(period, start, pipeline=pipeline, now=now)
    if fmt is Format.json:
        return print_json(r.to_dict())
    if fmt is Format.csv:
        return print_csv(r.to_pandas())
    render_plan_fact(r)


def render_plan_fact(r: PlanFactResult) -> None:
    c = out()
    c.print(f"\n[bold]Plan vs fact[/bold], {r.period} {r.start} – {r.end}: {r.elapsed:.0%} of the period gone")
    if not r.rows:
        c.print("No plans for this period: set one with voronka plan set.")
        return
    t = Table("Metric", "Pipeline", "Manager", "Plan", "Fact", "% done", "Run rate", "Run rate %")
    for row in r.rows:
        t.add_row(
            row.metric,
            row.pipeline,
            row.owner,
            "—" if row.target is None else money(row.target),
            money(row.fact),
            pct(row.pct_done),
            "—" if row.run_rate is None else money(row.run_rate),
            pct(row.run_rate_pct),
        )
    c.print(t)
    w = Table("Metric", "Pipeline", "Manager", "Week from", "Fact", "Cumulative", "Plan to date", "% of plan")
    for wk in r.weeks:
        w.add_row(
            wk.metric,
            wk.pipeline,
            wk.owner,
            wk.week_start,
            money(wk.fact),
            money(wk.cumulative),
            "—" if wk.planned_cumulative is None else money(wk.planned_cumulative),
            pct(wk.pct_done),
        )
    c.print(w)
    if r.skipped_other_currency:
        c.print(f"[yellow]Note:[/yellow] {r.skipped_other_currency} wins in another currency are not counted.")
    c.print("[dim]% done = fact / plan; run rate = fact / share of the period gone (where it ends at this pace).[/dim]")


@app.command("need")
@guard
def need(
    pipeline: str = typer.Argument(..., help="Pipeline name or id."),
    target: str = typer.Option(..., "--target", help="Revenue to reach over the months."),
    confidence: float = typer.Option(0.8, "--confidence", help="Probability of reaching it, e.g. 0.8."),
    months: int = typer.Option(3, "--months", help="Over how many months from now."),
    paths: int = typer.Option(10_000, "--paths", help="Monte Carlo paths."),
    as_of: str = typer.Option(None, "--as-of", help="Plan as of this date (ISO); default now."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Leads needed (and when) to reach TARGET revenue with the given confidence; where to push."""
    amount = float(parse_amount(target, what="--target"))
    r = workspace().plan_need(pipeline, amount, confidence=confidence, months=months, paths=paths, as_of=as_of)
    if fmt is Format.json:
        return print_json(r.to_dict())
    if fmt is Format.csv:
        import pandas as pd

        return print_csv(pd.DataFrame([c.__dict__ for c in r.channels]))
    render_need(r)


def render_need(r: NeedResult) -> None:
    c = out()
    cur = r.currency
    c.print(
        f"\n[bold]Reverse plan {r.pipeline!r}[/bold]: {money(r.target)} {cur} by {r.horizon_end} "
        f"with {r.confidence:.0%} confidence"
    )
    c.print(
        f"Open deals alone bring {money(r.open_revenue_mean)} {cur} on average: {pct(r.p_open_only)} chance. "
        f"At today's {r.leads_per_week_now:.1f} new leads/week: {pct(r.p_current_inflow)} chance."
    )
    if r.leads_per_week_needed == r.leads_per_week_needed:  # not NaN
        c.print(
            f"[bold]Needed: {r.leads_per_week_needed:.1f} new leads/week[/bold] "
            f"({r.leads_needed:.0f} in all, steadily from now to {r.horizon_end})."
        )
    if r.days_to_win_median is not None:
        c.print(
            f"Time from entry to win: median {r.days_to_win_median:.0f} d, p90 {r.days_to_win_p90:.0f} d; "
            f"leads entering after {r.enter_by} have less than half their chance to close in time."
        )
    t = Table("Channel", "Entered", "Won", escape("Win rate [95% CI]"), "Avg won amount", "Leads/week if only it")
    for ch in r.channels:
        t.add_row(
            ch.channel,
            str(ch.entered),
            str(ch.won),
            f"{pct(ch.win_rate)} [{pct(ch.ci_low)}–{pct(ch.ci_high)}]",
            "—" if ch.avg_won_amount is None else money(ch.avg_won_amount),
            "—" if ch.leads_per_week is None else f"{ch.leads_per_week:.1f}",
        )
    c.print(t)
    s = Table("Stage (+5 pp conversion)", f"Extra revenue by {r.horizon_end}")
    for imp in r.improvements:
        s.add_row(imp.stage, money(imp.extra_revenue))
    c.print(s)
    for note in r.notes:
        c.print(f"[yellow]Note:[/yellow] {escape(note)}")
