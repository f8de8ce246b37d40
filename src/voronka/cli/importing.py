"""`voronka import preview|deals|moves`."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.table import Table

from voronka.cli._common import guard, out, workspace
from voronka.io.apply import ImportSummary, apply_batch
from voronka.io.batch import ImportBatch
from voronka.io.deals import read_deals, read_moves, table_and_mapping
from voronka.io.events import import_costs, import_events, read_events
from voronka.io.mapping import DEAL_FIELDS
from voronka.io.tables import open_table

app = typer.Typer(help="Bring deals and their history in from files and CRMs.", no_args_is_help=True)

CREATE = typer.Option(False, "--create-missing", help="Create unknown pipelines and stages instead of refusing.")
SKIP = typer.Option(False, "--skip-bad-rows", help="Import the good rows; write the bad ones to a reject file.")
DRY = typer.Option(False, "--dry-run", help="Check and count everything, write nothing.")


@app.command("preview")
@guard
def preview(
    file: Path = typer.Argument(..., help="CSV, XLSX, HTML-.xls or Parquet file."),
    rows: int = typer.Option(5, help="How many rows to show."),
    mapping: Path = typer.Option(None, help="A mapping file to try instead of the detected one."),
) -> None:
    """Show how Voronka reads a file: encoding, delimiter, columns, first rows, and the mapping it would use."""
    table, found = table_and_mapping(file, mapping, DEAL_FIELDS)
    c = out()
    c.print(
        f"[bold]{file.name}[/bold]: {table.kind}"
        + (f", encoding {table.encoding}" if table.encoding else "")
        + (f", delimiter {table.delimiter!r}" if table.delimiter else "")
        + f", {len(table.header)} columns"
        + "".join(f", {n}" for n in table.notes)
    )
    t = Table(*[f"{i + 1}. {h}" for i, h in enumerate(table.header)], title="First rows as parsed")
    for _, (_n, cells) in zip(range(rows), table.rows, strict=False):
        t.add_row(*cells[: len(table.header)])
    c.print(t)
    missing = [f for f in ("title", "stage", "pipeline") if f not in found.columns]
    c.print("Mapping (save as mapping.yaml, edit, pass with --mapping):")
    typer.echo(yaml.safe_dump(found.to_file_dict(table.header), allow_unicode=True, sort_keys=False))
    if missing:
        c.print(f"Not found: {', '.join(missing)} — add them to the mapping, or pass --pipeline for the pipeline.")


@contextmanager
def progress(what: str) -> Iterator[None]:
    """A spinner with the elapsed time on stderr, shown only in a terminal."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    with console.status(f"{what} …", spinner="dots"):
        yield


def _finish(batch: ImportBatch, summary: ImportSummary, file: Path) -> None:
    c = out()
    if summary.created:
        c.print("Created: " + "; ".join(summary.created))
    for note, count in batch.notes.items():
        c.print(f"Note: {count} {note}.")
    if summary.problems:
        rejects = file.with_name(file.stem + ".rejects.csv")
        _write_rejects(batch, rejects, file)
        c.print(f"{len(summary.problems)} problem(s); the bad rows are in {rejects}:")
        for p in summary.problems[:20]:
            c.print(f"  - {p}", markup=False)
    c.print(f"Import of {file.name}: {summary.line()}")


def _write_rejects(batch: ImportBatch, path: Path, source: Path) -> None:
    reasons: dict[int, list[str]] = {}
    for p in batch.problems:
        reasons.setdefault(p.row or 0, []).append(p.reason if p.column is None else f"{p.column}: {p.reason}")
    cells = dict(batch.bad_rows)
    missing = set(reasons) - set(cells) - {0}
    if missing and source.exists():  # rows refused after reading (unknown stage, duplicate id): read them again
        for n, row in open_table(source).rows:
            if n in missing:
                cells[n] = row
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh, delimiter=";")
        w.writerow(["row", "problem", *batch.header])
        for row in sorted(reasons):
            w.writerow([row, "; ".join(reasons[row]), *map(_readable, cells.get(row, []))])


def _readable(cell: str) -> str:
    """A cell whose bytes were not the file's encoding (kept as surrogates), read as Windows-1251, the usual
    other encoding of Russian files, so the reject file stays valid UTF-8."""
    if not any("\udc80" <= ch <= "\udcff" for ch in cell):
        return cell
    return cell.encode("utf-8", "surrogateescape").decode("cp1251", errors="replace")


@app.command("deals")
@guard
def deals(
    file: Path = typer.Argument(..., help="CSV, XLSX, HTML-.xls or Parquet file of deals."),
    mapping: Path = typer.Option(None, help="A YAML/JSON mapping of fields to columns."),
    pipeline: str = typer.Option(None, help="The pipeline, when the file has no pipeline column."),
    source: str = typer.Option(
        "file", help="Where the ids come from; the same id from another source is another deal."
    ),
    currency: str = typer.Option("RUB", help="Currency when the file has no currency column."),
    create_missing: bool = CREATE,
    skip_bad_rows: bool = SKIP,
    dry_run: bool = DRY,
) -> None:
    """Import deals in their current stage; re-running the same file changes nothing."""
    with progress(f"Reading {file.name}"):
        batch = read_deals(file, mapping=mapping, pipeline=pipeline, source=source, currency=currency)
    with progress(f"Writing {len(batch.deals):,} deals"):
        summary = apply_batch(
            workspace(), batch, create_missing=create_missing, skip_bad_rows=skip_bad_rows, dry_run=dry_run
        )
    _finish(batch, summary, file)


@app.command("moves")
@guard
def moves(
    file: Path = typer.Argument(..., help="CSV, XLSX or Parquet file of stage moves."),
    pipeline: str = typer.Option(None, help="The pipeline, when the file has no pipeline column."),
    deal: str = typer.Option(None, help="Column of the deal id."),
    stage: str = typer.Option(None, help="Column of the stage."),
    time: str = typer.Option(None, "--time", help="Column of the time of the move."),
    by: str = typer.Option(None, help="Column of who moved it."),
    reason: str = typer.Option(None, help="Column of the loss reason."),
    mapping: Path = typer.Option(None, help="A YAML/JSON mapping (columns, constants such as `stage: Won`)."),
    source: str = typer.Option("file", help="Where the deal ids come from."),
    create_missing: bool = CREATE,
    skip_bad_rows: bool = SKIP,
    dry_run: bool = DRY,
) -> None:
    """Import a stage history (one row per move); deals not in the workspace are created from it."""
    columns = {"deal": deal, "stage": stage, "at": time, "by": by, "reason": reason}
    with progress(f"Reading {file.name}"):
        batch = read_moves(
            file, pipeline=pipeline, columns={k: v for k, v in columns.items() if v}, mapping=mapping, source=source
        )
    with progress(f"Writing {len(batch.moves):,} moves"):
        summary = apply_batch(
            workspace(), batch, create_missing=create_missing, skip_bad_rows=skip_bad_rows, dry_run=dry_run
        )
    _finish(batch, summary, file)


@app.command("events")
@guard
def events_(
    file: Path = typer.Argument(..., help="CSV or Parquet event log."),
    entity: str = typer.Option(None, help="Column of the entity (user, session, lead id)."),
    time: str = typer.Option(None, "--time", help="Column of the event time."),
    event: str = typer.Option(None, help="Column of the event name."),
    source: str = typer.Option("", help="A name for this log; the same event in another log is kept apart."),
    skip_bad_rows: bool = SKIP,
    dry_run: bool = DRY,
) -> None:
    """Import an event log (entity, time, event; other columns become properties); re-runs add nothing."""
    with progress(f"Reading {file.name}"):
        batch, rows = read_events(file, columns={"entity": entity, "at": time, "event": event}, source=source)
    with progress(f"Writing {len(rows):,} events"):
        summary = import_events(workspace(), batch, rows, skip_bad_rows=skip_bad_rows, dry_run=dry_run)
    _finish(batch, summary, file)


@app.command("costs")
@guard
def costs_(
    file: Path = typer.Argument(
        ..., help="CSV/XLSX of marketing costs: channel, period (date / month / start+end), amount."
    ),
    currency: str = typer.Option("RUB", help="Currency when the file has no currency column."),
    skip_bad_rows: bool = SKIP,
    dry_run: bool = DRY,
) -> None:
    """Import marketing costs per channel and period; a re-import updates changed amounts only."""
    batch, summary = import_costs(workspace(), file, currency=currency, skip_bad_rows=skip_bad_rows, dry_run=dry_run)
    _finish(batch, summary, file)
