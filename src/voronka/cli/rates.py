"""`voronka rates set|import|list`: dated currency rates for converting amounts."""

from __future__ import annotations

import typer

from voronka.cli._common import FORMAT_OPTION, Format, guard, out, print_csv, print_json, workspace
from voronka.service import rates as service

app = typer.Typer(
    help="Dated currency rates: amounts in other currencies are converted with them.", no_args_is_help=True
)


@app.command("set")
@guard
def set_(
    currency: str = typer.Argument(..., help="The currency converted, e.g. USD."),
    quote: str = typer.Argument(..., help="The currency it is converted to, e.g. RUB."),
    rate: float = typer.Argument(..., help="How many QUOTE one CURRENCY is worth, e.g. 92.5."),
    day: str = typer.Option(None, "--day", help="The rate holds from this day (ISO; default today)."),
) -> None:
    """Set the rate 1 CURRENCY = RATE QUOTE from --day on."""
    service.set_rate(workspace(), currency, quote, rate, day)
    out().print(f"Rate set: 1 {currency.upper()} = {rate:g} {quote.upper()} from {day or 'today'}")


@app.command("import")
@guard
def import_(
    file: str = typer.Argument(..., help="CSV with columns date, currency, rate."),
    quote: str = typer.Option(..., "--quote", help="The currency the rates are in, e.g. RUB."),
) -> None:
    """Import rates from a CSV (all rows or none)."""
    count = service.import_rates(workspace(), file, quote)
    out().print(f"Imported {count} rates into {quote.upper()}")


@app.command("list")
@guard
def list_(fmt: Format = FORMAT_OPTION) -> None:
    """Every rate."""
    frame = service.list_rates(workspace())
    if fmt is Format.json:
        return print_json(frame.to_dict(orient="records"))
    if fmt is Format.csv:
        return print_csv(frame)
    out().print(frame.to_string(index=False) if len(frame) else "No rates yet: voronka rates set USD RUB 92.5")
