"""The import page: upload a CSV/XLSX of deals, see how it is read (encoding, delimiter, first rows, the
mapping of columns to fields, and a dry run), edit the mapping, import. The same code as `voronka import deals`.

An upload is kept in a folder of its own under the system's temp folder, named by a random token, until it is
imported (or the folder is cleaned up by the system).
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from voronka.errors import InputError
from voronka.io.apply import ImportSummary, apply_batch
from voronka.io.deals import read_deals, table_and_mapping
from voronka.io.mapping import DEAL_FIELDS
from voronka.service.workspace import Workspace

SUFFIXES = (".csv", ".xlsx", ".xls", ".parquet", ".txt")
MAX_BYTES = 50 * 1024 * 1024
_ROOT = Path(tempfile.gettempdir()) / "voronka-uploads"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,60}$")


@dataclass
class Preview:
    token: str
    name: str
    kind: str
    header: list[str]
    rows: list[list[str]]
    mapping_yaml: str
    missing: list[str]
    dry_run: ImportSummary | None
    problem: str | None


def save_upload(name: str, data: bytes) -> tuple[str, Path]:
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"File {name!r}: upload a .csv, .xlsx, .xls or .parquet file of deals.")
    if not data:
        raise InputError(f"File {name!r} is empty.")
    if len(data) > MAX_BYTES:
        raise InputError(f"File {name!r} is {len(data) // 2**20} MiB; the upload limit is {MAX_BYTES // 2**20} MiB.")
    token = secrets.token_urlsafe(24)
    folder = _ROOT / token
    folder.mkdir(parents=True)
    path = folder / f"upload{suffix}"
    path.write_bytes(data)
    (folder / "name").write_text(Path(name).name, encoding="utf-8")
    return token, path


def upload_path(token: str) -> Path:
    if not _TOKEN.match(token):
        raise InputError("This upload is unknown or already imported; upload the file again.")
    folder = _ROOT / token
    found = [p for p in folder.glob("upload.*")] if folder.is_dir() else []
    if not found:
        raise InputError("This upload is unknown or already imported; upload the file again.")
    return found[0]


def _mapping_file(path: Path, mapping_yaml: str | None) -> Path | None:
    if not mapping_yaml or not mapping_yaml.strip():
        return None
    try:
        parsed = yaml.safe_load(mapping_yaml)
    except yaml.YAMLError as exc:
        raise InputError(f"The mapping is not valid YAML: {exc}") from None
    if not isinstance(parsed, dict):
        raise InputError("The mapping must be YAML such as `columns: {title: Название, stage: Этап}`.")
    out = path.with_name("mapping.yaml")
    out.write_text(yaml.safe_dump(parsed, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return out


def preview(
    ws: Workspace, token: str, *, mapping_yaml: str | None, pipeline: str | None, currency: str, rows: int = 8
) -> Preview:
    """How the upload is read, and what importing it would do (a dry run: nothing is written)."""
    path = upload_path(token)
    name = (path.parent / "name").read_text(encoding="utf-8")
    mapping = _mapping_file(path, mapping_yaml)
    table, found = table_and_mapping(path, mapping, DEAL_FIELDS)
    first = [cells[: len(table.header)] for _, (_n, cells) in zip(range(rows), table.rows, strict=False)]
    missing = [f for f in ("title", "stage", "pipeline") if f not in found.columns and f not in found.constants]
    if pipeline and "pipeline" in missing:
        missing.remove("pipeline")
    dry: ImportSummary | None = None
    problem = None
    try:
        batch = read_deals(path, mapping=mapping, pipeline=pipeline or None, currency=currency)
        dry = apply_batch(ws, batch, create_missing=True, skip_bad_rows=True, dry_run=True)
    except InputError as exc:
        problem = str(exc)
    kind = table.kind + (f", {table.encoding}" if table.encoding else "")
    kind += f", delimiter {table.delimiter!r}" if table.delimiter else ""
    return Preview(
        token,
        name,
        kind,
        list(table.header),
        first,
        mapping_yaml
        if mapping_yaml and mapping_yaml.strip()
        else yaml.safe_dump(found.to_file_dict(table.header), allow_unicode=True, sort_keys=False),
        missing,
        dry,
        problem,
    )


def run_import(
    ws: Workspace,
    token: str,
    *,
    mapping_yaml: str | None,
    pipeline: str | None,
    currency: str,
    create_missing: bool,
    skip_bad_rows: bool,
) -> ImportSummary:
    """Import the upload (all or nothing unless ``skip_bad_rows``), then forget it."""
    path = upload_path(token)
    mapping = _mapping_file(path, mapping_yaml)
    batch = read_deals(path, mapping=mapping, pipeline=pipeline or None, currency=currency)
    summary = apply_batch(ws, batch, create_missing=create_missing, skip_bad_rows=skip_bad_rows)
    shutil.rmtree(path.parent, ignore_errors=True)
    return summary
