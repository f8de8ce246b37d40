"""`voronka import amocrm (FILE | --api --url URL [--token T])`: the export file, or the API sync."""

from __future__ import annotations

from pathlib import Path

import typer

from voronka.cli._common import guard, out, workspace
from voronka.cli.importing import CREATE, DRY, SKIP, _finish
from voronka.connectors.amocrm import SyncSummary, read_amocrm_export, sync_amocrm
from voronka.errors import InputError
from voronka.io.apply import apply_batch


def register(app: typer.Typer) -> None:
    """Add ``amocrm`` to ``app`` (the ``voronka import`` group)."""
    app.command("amocrm")(amocrm)


@guard
def amocrm(
    file: Path = typer.Argument(None, help="An amoCRM / Kommo deals export (CSV or XLSX); or use --api."),
    api: bool = typer.Option(False, "--api", help="Sync through the API v4 instead: the full stage history."),
    url: str = typer.Option(
        None,
        "--url",
        envvar="AMOCRM_URL",
        help="The account, e.g. https://SUBDOMAIN.amocrm.ru (or AMOCRM_URL).",
    ),
    token: str = typer.Option(
        None,
        "--token",
        envvar="AMOCRM_TOKEN",
        show_default=False,
        show_envvar=True,
        help="A long-lived token of a private integration (or AMOCRM_TOKEN; the variable keeps it out of the "
        "shell history).",
    ),
    full: bool = typer.Option(False, "--full", help="With --api: read everything again, not only what changed."),
    pipeline: str = typer.Option(None, help="Export: the pipeline, when the file has no «Воронка» column."),
    tz: str = typer.Option(None, "--tz", help="Export: the account's time zone, e.g. Europe/Moscow (default UTC)."),
    currency: str = typer.Option("RUB", help="The currency of the budgets."),
    create_missing: bool = CREATE,
    skip_bad_rows: bool = SKIP,
    dry_run: bool = DRY,
) -> None:
    """Import amoCRM / Kommo deals: from an export file (current stages only) or with --api (full history)."""
    if (file is None) == (not api):
        raise InputError(
            "Give either an export FILE, or --api --url https://SUBDOMAIN.amocrm.ru for the API sync, not both."
        )
    if file is not None:
        if full:
            raise InputError("--full is for the API sync (--api); an export file is always read whole.")
        batch = read_amocrm_export(file, pipeline=pipeline, tz=tz, currency=currency)
        summary = apply_batch(
            workspace(), batch, create_missing=create_missing, skip_bad_rows=skip_bad_rows, dry_run=dry_run
        )
        _finish(batch, summary, file)
        return
    if pipeline or tz:
        raise InputError("--pipeline and --tz are for export files; the API names pipelines and gives UTC times.")
    summary = sync_amocrm(
        workspace(), url, token, full=full, skip_bad_rows=skip_bad_rows, dry_run=dry_run, currency=currency
    )
    _report(summary)


def _report(summary: SyncSummary) -> None:
    c = out()
    if summary.created:
        c.print("Created: " + "; ".join(summary.created), markup=False)
    for note, count in summary.notes.items():
        c.print(f"Note: {count} {note}.", markup=False)
    if summary.problems:
        c.print(f"{len(summary.problems)} problem(s); these leads were left out:")
        for p in summary.problems[:20]:
            c.print(f"  - {p}", markup=False)
    kind = "full sync" if summary.full else "sync"
    c.print(
        f"amoCRM {kind} of {summary.host}: {summary.events} stage change event(s) read; {summary.line()}",
        markup=False,
    )
