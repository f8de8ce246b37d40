"""`voronka forecast PIPELINE` and `voronka forecast backtest PIPELINE`."""

from __future__ import annotations

from typing import Any

import click
import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from voronka.analytics.forecast.backtest import BacktestResult
from voronka.analytics.forecast.forecast import ForecastResult, Summary
from voronka.cli._common import FORMAT_OPTION, Format, guard, out, pct, print_csv, print_json, workspace
from voronka.domain.parse import parse_amount


class _DefaultRun(TyperGroup):
    """`voronka forecast X …` runs the forecast of X unless X names a subcommand (`backtest`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_DefaultRun,
    help=(
        "Forecast revenue, wins and stage occupancy for the next months (voronka forecast PIPELINE [OPTIONS], "
        "the same as voronka forecast run PIPELINE); backtest the forecast."
    ),
    no_args_is_help=True,
)


def money(x: float) -> str:
    return f"{x:,.0f}".replace(",", " ")


def spread(s: Summary, fmt: Any = money) -> str:
    return f"{fmt(s.p50)} [{fmt(s.p10)}–{fmt(s.p90)}]"


def count(x: float) -> str:
    return f"{x:.0f}"


@app.command("run")
@guard
def run(
    pipeline: str = typer.Argument(..., help="Pipeline name or id."),
    months: int = typer.Option(3, "--months", help="How many months ahead (1–12)."),
    by: str = typer.Option(None, "--by", help="Break down by owner or source."),
    target: str = typer.Option(None, "--target", help="A revenue plan for the months: the chance to reach it."),
    paths: int = typer.Option(10_000, "--paths", help="Monte Carlo paths."),
    as_of: str = typer.Option(None, "--as-of", help="Forecast as of this date (ISO); default now."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same numbers."),
    currency: str = typer.Option(None, "--currency", help="Report amounts in this currency (dated rates)."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Forecast PIPELINE: revenue, deals won, new deals and stage occupancy per month, p10/p50/p90
    (also: voronka forecast PIPELINE)."""
    amount = None if target is None else float(parse_amount(target, what="--target"))
    result = workspace().forecast(
        pipeline, months=months, by=by, paths=paths, target=amount, as_of=as_of, seed=seed, currency=currency
    )
    if fmt is Format.json:
        return print_json(result.to_dict())
    if fmt is Format.csv:
        return print_csv(result.to_pandas())
    render_forecast(result)


def render_forecast(r: ForecastResult) -> None:
    c = out()
    c.print(f"\n[bold]Forecast {r.pipeline!r}[/bold] as of {r.as_of[:16]} — {r.paths:,} paths, model: {r.model}")
    c.print(
        f"Now open: {r.groups[0].open_deals} deals, {money(r.groups[0].open_amount)} {r.currency}; "
        f"new deals {r.inflow_per_week:.1f}/week; fitted on {r.finished_stays} finished stays"
    )
    t = Table(
        "Month",
        "Revenue mean",
        escape("Revenue p50 [p10–p90]"),
        escape("Won p50 [p10–p90]"),
        "New deals",
        *[escape(f"{s} p50 [p10–p90]") for s in r.months[0].stages],
    )
    for m in r.months:
        t.add_row(
            f"{m.month}: {m.start} – {m.end}",
            money(m.revenue.mean),
            spread(m.revenue),
            spread(m.won, count),
            count(m.new_deals.mean),
            *[spread(s, count) for s in m.stages.values()],
        )
    c.print(t)
    if r.by:
        g = Table(r.by, "Open now", *[escape(f"Revenue m{m.month} p50 [p10–p90]") for m in r.months], "Won m1 p50")
        for grp in r.groups[1:]:
            g.add_row(
                grp.group, str(grp.open_deals), *[spread(m.revenue) for m in grp.months], count(grp.months[0].won.p50)
            )
        c.print(g)
    odds = Table("Stage", "P(win) just entered", "after 7 d", "after 30 d")
    for s in r.stage_odds:
        odds.add_row(s.stage, pct(s.p_win_new), pct(s.p_win_7d), pct(s.p_win_30d))
    c.print(odds)
    if r.target is not None:
        c.print(f"Chance to reach {money(r.target)} {r.currency} over {len(r.months)} months: {pct(r.p_target)}")
    for note in r.notes:
        c.print(f"[yellow]Note:[/yellow] {escape(note)}")
    c.print(f"[dim]{escape(r.definition)} Accuracy: voronka forecast backtest {escape(repr(r.pipeline))}.[/dim]")


@app.command("backtest")
@guard
def backtest(
    pipeline: str = typer.Argument(..., help="Pipeline name or id."),
    months: int = typer.Option(3, "--months", help="Horizons to check (1–12 months)."),
    paths: int = typer.Option(2_000, "--paths", help="Monte Carlo paths per origin."),
    hand: str = typer.Option(None, "--hand", help='Hand-set stage probabilities for the baseline, e.g. "0.1,0.3,0.6".'),
    now: str = typer.Option(None, "--now", help="Treat this date as today (ISO); default now."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Rolling-origin backtest: WAPE, bias, coverage of the 80% and 50% intervals, against two baselines."""
    probabilities = None if hand is None else _floats(hand)
    result = workspace().backtest(pipeline, months=months, paths=paths, hand=probabilities, now=now)
    if fmt is Format.json:
        return print_json(result.to_dict())
    if fmt is Format.csv:
        return print_csv(result.to_pandas())
    render_backtest(result)


def _floats(text: str) -> list[float]:
    from voronka.errors import InputError

    try:
        return [float(x.strip().replace(",", ".")) for x in text.split(";" if ";" in text else ",")]
    except ValueError:
        raise InputError(f'--hand {text!r}: give one probability per open stage, e.g. "0.1,0.3,0.6".') from None


def render_backtest(r: BacktestResult) -> None:
    c = out()
    c.print(f"\n[bold]Backtest {r.pipeline!r}[/bold] — rolling origin, {r.paths:,} paths per origin")
    t = Table("Horizon", "Origins", "WAPE", "Bias", "80% coverage", "50% coverage", "WAPE naive", "WAPE weighted")
    w = Table("Horizon", "Won: WAPE", "Bias", "80% coverage", "50% coverage", "WAPE naive")
    for s in r.summary:
        t.add_row(
            f"{s.horizon} mo",
            str(s.origins),
            pct(s.wape),
            pct(s.bias),
            pct(s.coverage_80),
            pct(s.coverage_50),
            pct(s.wape_naive) if s.horizon == 1 else "",
            pct(s.wape_weighted_pipeline) if s.horizon == 1 else "",
        )
        w.add_row(
            f"{s.horizon} mo",
            pct(s.won_wape),
            pct(s.won_bias),
            pct(s.won_coverage_80),
            pct(s.won_coverage_50),
            pct(s.won_wape_naive) if s.horizon == 1 else "",
        )
    c.print(t)
    c.print(w)
    rows = Table("Origin", "Actual", escape("p50 [p10–p90]"), "Naive", "Weighted pipeline")
    for row in r.rows:
        if row.horizon == 1:
            rows.add_row(
                row.origin,
                money(row.actual),
                f"{money(row.p50)} [{money(row.p10)}–{money(row.p90)}]",
                money(row.naive),
                money(row.weighted_pipeline),
            )
    c.print(rows)
    if r.skipped_origins:
        c.print(f"Skipped (too little history before them): {', '.join(r.skipped_origins)}")
    for note in r.notes:
        c.print(f"[yellow]Note:[/yellow] {escape(note)}")
    hand = ", ".join(f"{k} {v:.0%}" for k, v in r.hand_probabilities.items())
    c.print(f"[dim]{escape(r.definition)} Hand-set probabilities: {escape(hand)}.[/dim]")
