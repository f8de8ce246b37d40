"""Entry point: the root command, global options, and the command groups."""

from __future__ import annotations

import typer

from voronka.cli import (
    analysis,
    data,
    deal,
    events,
    import_amocrm,
    import_bitrix24,
    importing,
    pipeline,
    reports,
    serve,
    workspace,
)
from voronka.cli import forecast as forecast_cli
from voronka.cli import plan as plan_cli
from voronka.cli import rates as rates_cli
from voronka.cli._common import State, set_state
from voronka.settings import Settings

app = typer.Typer(
    name="voronka",
    help="Voronka: sales funnels with honest numbers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def root(
    ctx: typer.Context,
    db: str = typer.Option(None, "--db", help="Workspace database URL; default $VORONKA_DB or sqlite:///voronka.db."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
) -> None:
    st = State(Settings.from_env(db), debug)
    set_state(st)
    ctx.call_on_close(st.close)  # the command's connections close with it, not whenever the GC gets to them


workspace.register(app)
reports.register(app)
analysis.register(app)
data.register(app)
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(deal.app, name="deal")
import_amocrm.register(importing.app)
import_bitrix24.register(importing.app)
app.add_typer(importing.app, name="import")
app.add_typer(events.app, name="events")
app.add_typer(forecast_cli.app, name="forecast")
app.add_typer(plan_cli.app, name="plan")
app.add_typer(rates_cli.app, name="rates")
serve.register(app)


def main() -> None:
    app()
