"""`voronka export`, `voronka dump`, `voronka restore`."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from voronka.cli._common import guard, out, workspace
from voronka.errors import InputError
from voronka.io.dump import dump as dump_workspace
from voronka.io.dump import restore as restore_workspace
from voronka.io.export import TABLES, table_frame, write_frame

REPORTS = ("funnel", "stuck")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("dump")(dump)
    app.command("restore")(restore)


def _default_locale() -> str:
    lang = os.environ.get("VORONKA_LOCALE") or os.environ.get("LC_ALL") or os.environ.get("LANG") or "en"
    return "ru" if lang.lower().startswith("ru") else "en"


@guard
def export(
    what: str = typer.Argument(..., help=f"A table ({', '.join(TABLES)}) or a report ({', '.join(REPORTS)})."),
    output: Path = typer.Option(..., "--output", "-o", help="File to write: .csv, .xlsx or .json."),
    pipeline: str = typer.Option(None, help="Only this pipeline (deals, moves, pipelines; required for funnel)."),
    by: str = typer.Option(None, help="funnel: break down by owner, source, segment or month."),
    fmt: str = typer.Option(None, "--format", help="csv, xlsx or json; default from the file's extension."),
    locale: str = typer.Option(None, help="ru: CSV with ';', decimal comma, UTF-8 with BOM; en: ',' and UTF-8."),
    encoding: str = typer.Option(None, help="CSV encoding, e.g. cp1251 for old Excel."),
) -> None:
    """Export a table or a report as CSV, XLSX or JSON."""
    import pandas as pd

    ws = workspace()
    if what == "funnel":
        if pipeline is None:
            raise InputError("`voronka export funnel` needs --pipeline NAME.")
        frame = ws.funnel(pipeline, by=by).to_pandas()  # type: ignore[arg-type]
    elif what == "stuck":
        frame = ws.stuck(pipeline).to_pandas()
    else:
        frame = table_frame(ws, what, pipeline=pipeline)
    path = write_frame(pd.DataFrame(frame), output, fmt=fmt, locale=locale or _default_locale(), encoding=encoding)
    out().print(f"Wrote {len(frame)} rows to {path}")


@guard
def dump(path: Path = typer.Argument(..., help="The dump file to write (a zip).")) -> None:
    """Write the whole workspace to one file that `voronka restore` loads back without loss."""
    counts = dump_workspace(workspace(), path)
    out().print(f"Dumped to {path}: " + ", ".join(f"{k} {v}" for k, v in counts.items()), soft_wrap=True)


@guard
def restore(path: Path = typer.Argument(..., help="A file made by `voronka dump`.")) -> None:
    """Load a dump into an empty workspace, keeping every id."""
    counts = restore_workspace(workspace(), path)
    out().print(f"Restored from {path}: " + ", ".join(f"{k} {v}" for k, v in counts.items()), soft_wrap=True)
