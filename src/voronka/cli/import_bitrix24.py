"""`voronka import bitrix24 (FILE | --webhook URL)`: the Bitrix24 deals export, or a sync over REST."""

from __future__ import annotations

import os
import re
from pathlib import Path

import typer

from voronka.cli._common import guard, out, workspace
from voronka.cli.importing import CREATE, DRY, SKIP, _finish
from voronka.connectors.bitrix24 import (
    Bitrix24Client,
    Webhook,
    export_pipeline_specs,
    read_bitrix24_export,
    run_bitrix24_sync,
)
from voronka.errors import InputError
from voronka.io.apply import apply_batch

WEBHOOK_ENV = "BITRIX24_WEBHOOK"


def register(app: typer.Typer) -> None:
    """Add the ``bitrix24`` command to ``app`` (the ``import`` group)."""
    app.command("bitrix24")(bitrix24)


@guard
def bitrix24(
    file: Path = typer.Argument(None, help="A deals export: CSV (Windows-1251 or UTF-8) or the HTML .xls."),
    webhook: str = typer.Option(
        None, "--webhook", help=f"Inbound webhook URL https://PORTAL/rest/USER_ID/CODE/ (or ${WEBHOOK_ENV})."
    ),
    pipeline: str = typer.Option(None, help="Name of the default pipeline in an export (default: Общая)."),
    timezone: str = typer.Option(
        None, "--timezone", help="The portal's time zone of an export's dates, e.g. Europe/Moscow (default: UTC)."
    ),
    full: bool = typer.Option(False, "--full", help="Sync: read all deals and history again, not just changes."),
    create_missing: bool = CREATE,
    skip_bad_rows: bool = SKIP,
    dry_run: bool = DRY,
) -> None:
    """Import Bitrix24 deals: an export file as a snapshot, or the portal's deals and stage history over REST.

    Re-running changes nothing; a sync reads only what changed since the last one unless --full.
    """
    if file is not None and webhook:
        raise InputError("Give either an export FILE or --webhook, not both.")
    if file is not None:
        _export(file, pipeline, timezone, create_missing, skip_bad_rows, dry_run)
        return
    url = webhook or os.environ.get(WEBHOOK_ENV, "").strip()
    if not url:
        raise InputError(
            f"Nothing to import: give an export FILE, or --webhook https://PORTAL.bitrix24.ru/rest/USER_ID/CODE/ "
            f"(or set {WEBHOOK_ENV})."
        )
    _sync(url, full, create_missing, skip_bad_rows, dry_run)


def _export(
    file: Path, pipeline: str | None, timezone: str | None, create_missing: bool, skip_bad_rows: bool, dry_run: bool
) -> None:
    ws = workspace()
    batch = read_bitrix24_export(file, pipeline=pipeline, timezone=timezone)
    if create_missing:
        batch.pipelines = export_pipeline_specs(batch, ws.pipelines())
    summary = apply_batch(ws, batch, create_missing=create_missing, skip_bad_rows=skip_bad_rows, dry_run=dry_run)
    _finish(batch, summary, file)


def _sync(url: str, full: bool, create_missing: bool, skip_bad_rows: bool, dry_run: bool) -> None:
    host = Webhook.parse(url).host
    with Bitrix24Client(url) as client:
        batch, summary = run_bitrix24_sync(
            workspace(),
            url,
            full=full,
            create_missing=create_missing,
            skip_bad_rows=skip_bad_rows,
            dry_run=dry_run,
            client=client,
        )
        out().print(
            f"Bitrix24 {host}: {len(batch.deals)} deals and {len(batch.moves)} stage-history records read "
            f"({'everything' if full else 'changes since the last sync, if any'}) in {client.requests} requests.",
            markup=False,
        )
    _finish(batch, summary, Path(f"bitrix24-{re.sub(r'[^A-Za-z0-9]+', '-', host)}.csv"))
