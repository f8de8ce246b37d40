"""`voronka events funnel`: event funnels over a CSV / Parquet log, a DuckDB table or the workspace's events."""

from __future__ import annotations

import typer
from rich.table import Table

from voronka.analytics.events import FunnelResult, StepStats
from voronka.cli._common import FORMAT_OPTION, Format, ci, guard, out, pct, print_csv, print_json, workspace
from voronka.service.event_funnel import event_source, run_event_funnel

app = typer.Typer(help="Funnels over event logs (visits, views, requests).", no_args_is_help=True)


@app.command("funnel")
@guard
def funnel(
    source: str = typer.Argument(..., help="A .parquet / .csv file, DB.duckdb:TABLE, 'workspace', or a server table."),
    steps: str = typer.Option(..., "--steps", help="Events in order: view,cart,purchase; a CRM stage: stage:P:S."),
    entity: str = typer.Option(None, "--entity", help="Entity column (user, session, lead id); default 'entity'."),
    time: str = typer.Option(None, "--time", help="Time column: ISO 8601, '… UTC', epoch s or ms; default 'time'."),
    event: str = typer.Option(None, "--event", help="Event-name column; default 'event'."),
    window: str = typer.Option("7d", "--window", help="From step 1 to any later step, inclusive: 7d, 12h, 30m."),
    by: str = typer.Option(None, "--by", help="Break down by this column."),
    attribution: str = typer.Option(None, "--attribution", help="first_touch (default), last_touch or step:N."),
    mode: str = typer.Option("ordered", "--mode", help="ordered, strict or any."),
    count: str = typer.Option("entities", "--count", help="Count entities (default) or attempts."),
    exclude: list[str] = typer.Option(None, "--exclude", help="An exclusion event (repeatable)."),
    exclusion_policy: str = typer.Option("keep", "--exclusion-policy", help="keep (default) or remove."),
    from_: str = typer.Option(None, "--from", help="Step 1 on or after this time (ISO)."),
    to: str = typer.Option(None, "--to", help="Step 1 before this time (ISO)."),
    after_range: str = typer.Option("allow", "--after-range", help="Later steps after --to: allow or clip."),
    engine: str = typer.Option("inprocess", "--engine", help="inprocess (default) or clickhouse."),
    clickhouse_url: str = typer.Option(None, "--clickhouse-url", help="ClickHouse server, e.g. http://host:8123."),
    crm_key: str = typer.Option(None, "--crm-key", help="Event property with the deal's external id (stage: steps)."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """An ordered event funnel: entities per step, conversion with 95% intervals, time between steps."""
    result = run_event_funnel(
        event_source(source, entity, time, event, workspace, crm=crm_key is not None),
        steps=steps.split(","),
        window=window,
        start=from_,
        end=to,
        engine=engine,
        clickhouse_url=clickhouse_url,
        attribution=attribution,
        by=by,
        mode=mode,
        count=count,
        exclusions=tuple(exclude or ()),
        exclusion_policy=exclusion_policy,
        after_range=after_range,
        crm_key=crm_key,
    )
    if fmt is Format.json:
        return print_json(result.to_dict())
    if fmt is Format.csv:
        return print_csv(result.to_pandas())
    render(result)


def duration(seconds: float | None) -> str:
    """``95`` → ``1m 35s``; ``None`` → ``—``."""
    if seconds is None:
        return "—"
    days, rest = divmod(int(round(seconds)), 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _row(s: StepStats) -> list[str]:
    return [
        s.name,
        f"{s.entities:,}",
        "" if s.conversion is None else f"{pct(s.conversion)} {ci(s.ci_low, s.ci_high)}",
        f"{pct(s.conversion_from_start)} {ci(s.from_start_ci_low, s.from_start_ci_high)}",
        duration(s.median_seconds_from_previous),
        duration(s.p90_seconds_from_previous),
        duration(s.median_seconds_from_start),
    ]


def render(r: FunnelResult) -> None:
    c = out()
    head = ["Step", r.count.capitalize(), "Conv. from prev [95% CI]", "From start [95% CI]", "Median", "P90"]
    head.append("Median from start")
    t = Table(*head)
    for s in r.steps:
        t.add_row(*_row(s))
    c.print(f"\n[bold]Event funnel[/bold] — {r.steps[0].entities:,} {r.count} entered ({r.mode}, engine {r.engine})")
    c.print(t)
    if r.breakdown:
        b = Table(str(r.by), *head)
        for g in r.breakdown:
            for s in g.steps:
                b.add_row(g.value, *_row(s))
        c.print(b)
    if r.removed:
        c.print(f"Removed by exclusions: {r.removed:,}")
    c.print(f"[dim]{r.definition}[/dim]")
