"""`voronka funnel` and `voronka stuck`."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from voronka.analytics.stage_funnel import StageFunnelResult
from voronka.analytics.stuck import StuckResult
from voronka.cli._common import (
    FORMAT_OPTION,
    Format,
    ci,
    days,
    guard,
    out,
    pct,
    print_csv,
    print_json,
    workspace,
)


def register(app: typer.Typer) -> None:
    app.command("funnel")(funnel)
    app.command("stuck")(stuck)


@guard
def funnel(
    pipeline: str = typer.Argument(..., help="Pipeline name or id."),
    from_: str = typer.Option(None, "--from", help="Deals that entered on or after this date (ISO)."),
    to: str = typer.Option(None, "--to", help="... and before this date (ISO)."),
    by: str = typer.Option(None, help="Break down by owner, source, segment or month."),
    strict: bool = typer.Option(False, "--strict", help="Count only stages actually entered (skips do not pass)."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """The stage funnel: reached, passed, conversion with 95% intervals, losses by reason, time in stage."""
    result = workspace().funnel(pipeline, start=from_, end=to, by=by, strict=strict)  # type: ignore[arg-type]
    if fmt is Format.json:
        return print_json(result.to_dict())
    if fmt is Format.csv:
        frame = result.to_pandas()
        frame["lost_reasons"] = frame["lost_reasons"].map(lambda d: json.dumps(d, ensure_ascii=False))
        return print_csv(frame)
    render_funnel(result)


def render_funnel(r: StageFunnelResult) -> None:
    c = out()
    o = r.overall
    mode = "strict" if r.strict else "implied"
    c.print(f"\n[bold]Funnel {r.pipeline!r}[/bold] — {o.entered} deals entered ({mode} counting)")
    if r.groups:
        c.print(_groups_table(r))
    else:
        c.print(_stages_table(r))
    c.print(
        f"Overall: won {o.won}, lost {o.lost}, open {o.open}"
        + (f", moved out {o.moved_out}" if o.moved_out else "")
        + f" · conversion {pct(o.conversion)} {ci(o.ci_low, o.ci_high)} (n={o.entered})"
        + f" · cycle to won: median {days(o.median_cycle_days)} d, p90 {days(o.p90_cycle_days)} d"
    )
    c.print(f"[dim]{r.definition}[/dim]")


def _stages_table(r: StageFunnelResult) -> Table:
    t = Table(
        "Stage",
        "Reached",
        "Passed",
        "Conv. to next [95% CI]",
        "From start",
        "Lost here (top reasons)",
        "Open",
        "Median d",
        "P90 d",
        "SLA d",
    )
    for s in r.stages:
        reasons = ", ".join(f"{k} {v}" for k, v in list(s.lost_reasons.items())[:3])
        t.add_row(
            s.name,
            str(s.reached),
            "" if s.passed is None else str(s.passed),
            "" if s.conversion is None and s.passed is None else f"{pct(s.conversion)} {ci(s.ci_low, s.ci_high)}",
            pct(s.conversion_from_start),
            f"{s.lost}" + (f": {reasons}" if reasons else "") if s.kind == "open" else "",
            str(s.open) if s.kind == "open" else "",
            days(s.median_days) if s.kind == "open" else "",
            days(s.p90_days) if s.kind == "open" else "",
            "" if s.sla_days is None else f"{s.sla_days:g}",
        )
    return t


def _groups_table(r: StageFunnelResult) -> Table:
    stages = [s.name for s in r.stages[:-1]]
    t = Table(
        str(r.by),
        "Entered",
        "Won",
        "Lost",
        "Open",
        "Conversion [95% CI]",
        *[f"{a} → next" for a in stages],
        "Median cycle d",
    )
    for g in r.groups:
        o = g.overall
        t.add_row(
            g.group,
            str(o.entered),
            str(o.won),
            str(o.lost),
            str(o.open),
            f"{pct(o.conversion)} {ci(o.ci_low, o.ci_high)}",
            *[f"{pct(s.conversion)} (n={s.reached})" for s in g.stages[:-1]],
            days(o.median_cycle_days),
        )
    return t


@guard
def stuck(
    pipeline: str = typer.Argument(None, help="Pipeline name or id; default all."),
    fmt: Format = FORMAT_OPTION,
    limit: int = typer.Option(50, help="Show at most this many in the table."),
) -> None:
    """Stuck deals: open, over the stage's SLA, with no open activity due in the future."""
    result = workspace().stuck(pipeline)
    if fmt is Format.json:
        return print_json(result.to_dict())
    if fmt is Format.csv:
        return print_csv(result.to_pandas())
    render_stuck(result, limit)


def render_stuck(r: StuckResult, limit: int = 50) -> None:
    c = out()
    c.print(f"\n[bold]Stuck deals[/bold]: {len(r.deals)}")
    if r.deals:
        t = Table("ID", "Title", "Pipeline", "Stage", "Owner", "Days in stage", "SLA d", "Over by d")
        for d in r.deals[:limit]:
            t.add_row(
                str(d.id),
                d.title,
                d.pipeline,
                d.stage,
                d.owner or "—",
                f"{d.days_in_stage:.1f}",
                f"{d.sla_days:g}",
                f"{d.days_over_sla:.1f}",
            )
        c.print(t)
        if len(r.deals) > limit:
            c.print(f"… and {len(r.deals) - limit} more (use --limit or --format csv).")
    c.print(f"[dim]{r.definition}[/dim]")
