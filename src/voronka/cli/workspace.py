"""`voronka init` and `voronka demo`."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from voronka.cli._common import guard, out, state, when


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("demo")(demo)


@guard
def init() -> None:
    """Create the workspace database (or bring its schema up to date)."""
    ws = state().workspace()
    out().print(f"Workspace ready at {ws.url}")


@guard
def demo(
    seed: int = typer.Option(7, help="Random seed: the same seed gives the same workspace."),
    deals: int = typer.Option(3000, help="About how many deals to generate."),
    today: str = typer.Option(None, help="The demo's 'now' (ISO date); default: today."),
    report: bool = typer.Option(True, "--report/--no-report", help="Print the main funnel after building."),
    replace: bool = typer.Option(False, "--replace", help="Delete everything in the workspace first."),
) -> None:
    """Build the demo workspace: three funnels, six managers, a year of deals with planted effects."""
    from voronka.cli.reports import render_funnel, render_stuck
    from voronka.service.demo import build_demo

    ws = state().workspace()
    now = when(today, "--today date") or datetime.now(UTC)
    summary = build_demo(ws, seed=seed, n_deals=deals, now=now, replace=replace)
    out().print(f"Demo workspace at {ws.url}: {summary}")
    if report:
        main = ws.pipelines()[0].name
        render_funnel(ws.funnel(main))
        render_stuck(ws.stuck(main, now=now), limit=10)
