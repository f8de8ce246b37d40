"""`voronka export` of every table and report in CSV (ru / en), XLSX and JSON; `voronka dump` and `voronka restore`.

The data is the demo workspace (300 deals, seed 7) plus a small event log and marketing costs, so that every table
has rows. Expected values come from the SQLite file itself (sqlite3), not from the export code.
"""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import traceback
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from typer.testing import CliRunner, Result

from voronka.cli.main import app
from voronka.service.demo import build_demo
from voronka.service.workspace import Workspace

runner = CliRunner()
NOW = datetime(2026, 11, 1, tzinfo=UTC)
MAIN = "Новые клиенты"
BOM = b"\xef\xbb\xbf"

HEADERS = {
    "deals": [
        "id",
        "external_source",
        "external_id",
        "title",
        "pipeline",
        "stage",
        "stage_kind",
        "stage_since",
        "owner",
        "amount",
        "currency",
        "source",
        "segment",
        "created_at",
        "custom",
        "version",
        "snapshot",
    ],
    "moves": ["id", "deal_id", "external_id", "pipeline", "from_stage", "stage", "at", "by", "reason", "comment"],
    "activities": ["id", "deal_id", "kind", "at", "due_at", "done", "by", "note"],
    "events": ["id", "entity", "at", "event", "properties", "source", "digest"],
    "costs": ["id", "channel", "campaign", "start", "end", "amount", "currency"],
    "pipelines": ["pipeline_id", "pipeline", "process", "position", "stage", "kind", "sla_days"],
    "users": ["id", "name", "email", "role", "active"],
}
# Per table: the SQL count of its rows, and a text column with the SQL giving its value in the export's first row.
ROWS = {
    "deals": ("SELECT COUNT(*) FROM deals", "title", "SELECT title FROM deals ORDER BY id"),
    "moves": (
        "SELECT COUNT(*) FROM stage_moves",
        "stage",
        "SELECT s.name FROM stage_moves m JOIN stages s ON s.id = m.stage_id ORDER BY m.deal_id, m.id",
    ),
    "activities": ("SELECT COUNT(*) FROM activities", "note", "SELECT note FROM activities ORDER BY id"),
    "events": ("SELECT COUNT(*) FROM events", "event", "SELECT event FROM events ORDER BY id"),
    "costs": ("SELECT COUNT(*) FROM costs", "channel", "SELECT channel FROM costs ORDER BY id"),
    "pipelines": (
        "SELECT COUNT(*) FROM stages",
        "stage",
        "SELECT s.name FROM stages s ORDER BY s.pipeline_id, s.position",
    ),
    "users": ("SELECT COUNT(*) FROM users", "name", "SELECT name FROM users ORDER BY id"),
}
FUNNEL_HEADER = [
    "name",
    "kind",
    "reached",
    "passed",
    "conversion",
    "ci_low",
    "ci_high",
    "conversion_from_start",
    "from_start_ci_low",
    "from_start_ci_high",
    "lost",
    "lost_reasons",
    "moved_out",
    "open",
    "median_days",
    "p90_days",
    "sla_days",
    "stage_order",
]
STUCK_HEADER = [
    "id",
    "title",
    "pipeline",
    "stage",
    "owner",
    "amount",
    "currency",
    "in_stage_since",
    "days_in_stage",
    "sla_days",
    "days_over_sla",
]
EVENTS_CSV = (
    "user_id,time,event,page\nu1,2026-10-01 10:00,visit,/\nu1,2026-10-01 10:05,signup,/reg\n"
    "u2,01.10.2026 11:00,visit,/price\n"
)
COSTS_CSV = "Канал;Месяц;Расход\nЯндекс.Директ;2026-10;150 000,50\nАвито;01.09.2026;20000\n"


# -- helpers ----------------------------------------------------------------------------------------------------


def cli(db: str, *args: str | Path) -> Result:
    return runner.invoke(app, ["--db", db, *map(str, args)])


def explain(result: Result) -> str:
    exc = result.exception
    tb = "" if exc is None or isinstance(exc, SystemExit) else "".join(traceback.format_exception(exc))
    return result.output + tb


def ok(db: str, *args: str | Path) -> str:
    result = cli(db, *args)
    assert result.exit_code == 0, explain(result)
    return result.stdout


def refused(db: str, *args: str | Path) -> str:
    result = cli(db, *args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), explain(result)
    assert result.stderr.startswith("Error: "), result.output
    return result.stderr


def empty_workspace(template: Path, directory: Path) -> tuple[str, Path]:
    path = directory / f"ws-{uuid.uuid4().hex[:8]}.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}", path


def sql(path: Path, query: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(path)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def checkpointed_bytes(path: Path) -> bytes:
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    finally:
        con.close()
    return path.read_bytes()


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def read_csv(path: Path, *, delimiter: str, encoding: str) -> tuple[list[str], list[list[str]]]:
    with path.open(encoding=encoding, newline="") as fh:
        header, *rows = list(csv.reader(fh, delimiter=delimiter))
    return header, rows


def read_xlsx(path: Path) -> tuple[list[Any], list[tuple[Any, ...]]]:
    wb = openpyxl.load_workbook(path, read_only=True)
    try:
        header, *rows = list(wb.worksheets[0].iter_rows(values_only=True))
    finally:
        wb.close()
    return list(header), rows


def read_export(path: Path, fmt: str) -> tuple[list[Any], list[dict[str, Any]]]:
    """Header and rows (as dicts) of an export, whatever its format."""
    if fmt == "json":
        records = json.loads(path.read_text(encoding="utf-8"))
        return (list(records[0]) if records else []), records
    if fmt == "xlsx":
        header, rows = read_xlsx(path)
    else:
        ru = fmt == "csv-ru"
        header, rows = read_csv(path, delimiter=";" if ru else ",", encoding="utf-8-sig" if ru else "utf-8")
    return header, [dict(zip(header, r, strict=True)) for r in rows]


FORMATS = {  # name -> (file suffix, extra CLI options)
    "csv-ru": ("csv", ["--locale", "ru"]),
    "csv-en": ("csv", ["--locale", "en"]),
    "xlsx": ("xlsx", []),
    "json": ("json", []),
}


def export(db: str, what: str, fmt: str, directory: Path, *extra: str) -> Path:
    suffix, options = FORMATS[fmt]
    path = directory / f"{what}-{fmt}.{suffix}"
    out = ok(db, "export", what, "-o", path, *options, *extra)
    assert f"to {path}" in out
    return path


# -- the demo workspace --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[tuple[str, Path]]:
    """The demo workspace with events and costs; tests only read it."""
    directory = tmp_path_factory.mktemp("demo")
    db, path = empty_workspace(sqlite_template, directory)
    ws = Workspace.connect(db)
    try:
        build_demo(ws, seed=7, n_deals=300, now=NOW)
    finally:
        ws.close()
    (directory / "events.csv").write_text(EVENTS_CSV, encoding="utf-8")
    (directory / "costs.csv").write_text(COSTS_CSV, encoding="utf-8")
    assert "inserted 3" in ok(db, "import", "events", directory / "events.csv")
    assert "inserted 2" in ok(db, "import", "costs", directory / "costs.csv")
    yield db, path


# -- tables ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("table", list(HEADERS))
def test_every_table_exports_its_rows_in_every_format(
    demo: tuple[str, Path], tmp_path: Path, table: str, fmt: str
) -> None:
    db, path = demo
    count_sql, column, value_sql = ROWS[table]
    [(count,)] = sql(path, count_sql)
    assert count > 0
    header, rows = read_export(export(db, table, fmt, tmp_path), fmt)
    assert header == HEADERS[table]
    assert len(rows) == count
    assert rows[0][column] == sql(path, value_sql)[0][0]


def test_csv_ru_is_excel_russian(demo: tuple[str, Path], tmp_path: Path) -> None:
    """`;`, a UTF-8 BOM, decimal commas, dd.mm.yyyy HH:MM:SS."""
    db, path = demo
    raw = export(db, "deals", "csv-ru", tmp_path).read_bytes()
    assert raw.startswith(BOM)
    assert raw[len(BOM) :].startswith(";".join(HEADERS["deals"]).encode())
    _, rows = read_export(tmp_path / "deals-csv-ru.csv", "csv-ru")
    amount, created = sql(path, "SELECT amount, created_at FROM deals WHERE id = 1")[0]
    assert rows[0]["amount"] == f"{amount:.2f}".replace(".", ",")
    assert rows[0]["created_at"] == from_micros(created).strftime("%d.%m.%Y %H:%M:%S")
    _, costs = read_export(export(db, "costs", "csv-ru", tmp_path), "csv-ru")
    assert costs[0]["amount"] == "150000,50"
    _, stages = read_export(export(db, "pipelines", "csv-ru", tmp_path), "csv-ru")
    assert stages[0]["sla_days"] == "1,0"


def test_csv_en_is_plain(demo: tuple[str, Path], tmp_path: Path) -> None:
    db, path = demo
    raw = export(db, "deals", "csv-en", tmp_path).read_bytes()
    assert not raw.startswith(BOM)
    assert raw.startswith(",".join(HEADERS["deals"]).encode())
    _, rows = read_export(tmp_path / "deals-csv-en.csv", "csv-en")
    amount, created = sql(path, "SELECT amount, created_at FROM deals WHERE id = 1")[0]
    assert rows[0]["amount"] == f"{amount:.2f}"
    assert rows[0]["created_at"] == from_micros(created).strftime("%Y-%m-%d %H:%M:%S")
    _, costs = read_export(export(db, "costs", "csv-en", tmp_path), "csv-en")
    assert costs[0]["amount"] == "150000.50"


def test_xlsx_has_numbers_and_times(demo: tuple[str, Path], tmp_path: Path) -> None:
    db, path = demo
    _, rows = read_export(export(db, "deals", "xlsx", tmp_path), "xlsx")
    amount, created, title = sql(path, "SELECT amount, created_at, title FROM deals WHERE id = 1")[0]
    assert (rows[0]["id"], rows[0]["title"]) == (1, title)
    assert isinstance(rows[0]["amount"], int | float) and rows[0]["amount"] == amount
    assert rows[0]["created_at"] == from_micros(created).replace(tzinfo=None)  # UTC, without a zone in Excel


def test_json_keeps_amounts_exact_and_times_in_utc(demo: tuple[str, Path], tmp_path: Path) -> None:
    db, path = demo
    _, rows = read_export(export(db, "deals", "json", tmp_path), "json")
    amount, created = sql(path, "SELECT amount, created_at FROM deals WHERE id = 1")[0]
    assert Decimal(str(rows[0]["amount"])) == Decimal(str(amount))
    assert datetime.fromisoformat(rows[0]["created_at"].replace("Z", "+00:00")) == from_micros(created)
    _, events = read_export(export(db, "events", "json", tmp_path), "json")
    assert json.loads(events[0]["properties"]) == {"page": "/"}


def test_pipeline_option_limits_the_rows(demo: tuple[str, Path], tmp_path: Path) -> None:
    db, path = demo
    [(count,)] = sql(
        path, f"SELECT COUNT(*) FROM deals d JOIN pipelines p ON p.id = d.pipeline_id WHERE p.name = '{MAIN}'"
    )
    _, rows = read_export(export(db, "deals", "json", tmp_path, "--pipeline", MAIN), "json")
    assert len(rows) == count
    assert {r["pipeline"] for r in rows} == {MAIN}


def test_cp1251_csv_is_the_same_text_in_windows_1251(demo: tuple[str, Path], tmp_path: Path) -> None:
    db, _ = demo
    utf8 = export(db, "deals", "csv-ru", tmp_path).read_bytes()
    cp = tmp_path / "deals-cp1251.csv"
    ok(db, "export", "deals", "-o", cp, "--locale", "ru", "--encoding", "cp1251")
    assert cp.read_bytes().decode("cp1251") == utf8[len(BOM) :].decode("utf-8")


def test_a_value_cp1251_cannot_hold_is_a_clear_error(sqlite_template: Path, tmp_path: Path) -> None:
    db, _ = deal_with_title(sqlite_template, tmp_path, "Кухня ✓")
    stderr = refused(db, "export", "deals", "-o", tmp_path / "x.csv", "--locale", "ru", "--encoding", "cp1251")
    assert "cannot be written in cp1251" in stderr and "'✓'" in stderr


def test_a_failed_export_leaves_no_partial_file(sqlite_template: Path, tmp_path: Path) -> None:
    db, _ = deal_with_title(sqlite_template, tmp_path, "Кухня ✓")
    refused(db, "export", "deals", "-o", tmp_path / "x.csv", "--encoding", "cp1251")
    assert not (tmp_path / "x.csv").exists()


def deal_with_title(template: Path, directory: Path, title: str) -> tuple[str, Path]:
    db, path = empty_workspace(template, directory)
    ws = Workspace.connect(db)
    try:
        ws.create_pipeline("Продажи", stages=["Заявка"])
        ws.add_deal("Продажи", title, amount="100")
    finally:
        ws.close()
    return db, path


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["export", "nosuch", "-o", "x.csv"], "Unknown table 'nosuch'"),
        (["export", "deals", "-o", "x.txt"], "Unknown export format 'txt'"),
        (["export", "funnel", "-o", "x.csv"], "needs --pipeline"),
        (["export", "deals", "-o", "x.csv", "--pipeline", "Нет такой"], "Unknown pipeline 'Нет такой'"),
    ],
)
def test_export_mistakes_are_clear_errors(demo: tuple[str, Path], args: list[str], says: str) -> None:
    assert says in refused(demo[0], *args)


def from_micros(us: int) -> datetime:
    """A UTCTime column as SQLite stores it: integer microseconds since the epoch."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


# -- reports ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_funnel_report_exports(demo: tuple[str, Path], tmp_path: Path, fmt: str) -> None:
    db, _ = demo
    header, rows = read_export(export(db, "funnel", fmt, tmp_path, "--pipeline", MAIN), fmt)
    assert header == FUNNEL_HEADER
    ws = Workspace.connect(db)
    try:
        report = ws.funnel(MAIN)
    finally:
        ws.close()
    assert [r["name"] for r in rows] == [s.name for s in report.stages]
    assert int(rows[0]["reached"]) == report.stages[0].reached == report.overall.entered


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_stuck_report_exports(demo: tuple[str, Path], tmp_path: Path, fmt: str) -> None:
    db, _ = demo
    header, rows = read_export(export(db, "stuck", fmt, tmp_path, "--pipeline", MAIN), fmt)
    assert header == STUCK_HEADER
    ws = Workspace.connect(db)
    try:
        stuck = ws.stuck(MAIN)
    finally:
        ws.close()
    assert rows, "the demo has stuck deals"
    assert [int(r["id"]) for r in rows] == [d.id for d in stuck.deals]


def test_stuck_report_is_formatted_like_the_tables(demo: tuple[str, Path], tmp_path: Path) -> None:
    db, _ = demo
    _, ru = read_export(export(db, "stuck", "csv-ru", tmp_path, "--pipeline", MAIN), "csv-ru")
    _, xlsx = read_export(export(db, "stuck", "xlsx", tmp_path, "--pipeline", MAIN), "xlsx")
    assert "," in ru[0]["amount"] and "." not in ru[0]["amount"]
    datetime.strptime(ru[0]["in_stage_since"], "%d.%m.%Y %H:%M:%S")
    assert isinstance(xlsx[0]["amount"], int | float)
    assert isinstance(xlsx[0]["in_stage_since"], datetime)


# -- dump and restore -------------------------------------------------------------------------------------------


def test_dump_then_restore_reproduces_every_table(
    demo: tuple[str, Path], sqlite_template: Path, tmp_path: Path
) -> None:
    db, path = demo
    out = ok(db, "dump", tmp_path / "demo.zip")
    assert "deals 300" in out
    original = members(tmp_path / "demo.zip")
    manifest = json.loads(original["manifest.json"])
    assert manifest["format"] == "voronka-dump"
    assert manifest["tables"]["deals"] == 300 and manifest["tables"]["events"] == 3

    copy, copy_path = empty_workspace(sqlite_template, tmp_path)
    assert "deals 300" in ok(copy, "restore", tmp_path / "demo.zip")
    ok(copy, "dump", tmp_path / "copy.zip")
    assert members(tmp_path / "copy.zip") == original
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for table in ("deals", "moves", "pipelines"):  # and the restored workspace exports the same
        a, b = export(db, table, "json", tmp_path / "a"), export(copy, table, "json", tmp_path / "b")
        assert a.read_bytes() == b.read_bytes(), table
    assert sql(copy_path, "SELECT COUNT(*) FROM stage_moves") == sql(path, "SELECT COUNT(*) FROM stage_moves")


def test_restore_into_a_workspace_with_data_is_refused_and_changes_nothing(
    demo: tuple[str, Path], sqlite_template: Path, tmp_path: Path
) -> None:
    db, _ = demo
    ok(db, "dump", tmp_path / "demo.zip")
    other, other_path = deal_with_title(sqlite_template, tmp_path, "Единственная сделка")
    before = checkpointed_bytes(other_path)
    stderr = refused(other, "restore", tmp_path / "demo.zip")
    assert "is not empty" in stderr and "restore into a new, empty workspace" in stderr
    assert checkpointed_bytes(other_path) == before


def not_dumps(directory: Path) -> dict[str, Path]:
    files = {
        "text": ("notes.txt", b"hello\n"),
        "csv": ("deals.csv", "Название;Этап\nКухня;Заявка\n".encode()),
        "empty": ("empty.zip", b""),
        "random bytes": ("noise.zip", bytes(range(256)) * 4),
    }
    out = {name: directory / fname for name, (fname, _) in files.items()}
    for name, (_, data) in files.items():
        out[name].write_bytes(data)
    with zipfile.ZipFile(directory / "plain.zip", "w") as zf:
        zf.writestr("deals.jsonl", "")
    with zipfile.ZipFile(directory / "foreign.zip", "w") as zf:
        zf.writestr("manifest.json", json.dumps({"format": "something-else", "version": 1}))
    out["zip without a manifest"] = directory / "plain.zip"
    out["another format's manifest"] = directory / "foreign.zip"
    return out


@pytest.mark.parametrize(
    "kind", ["text", "csv", "empty", "random bytes", "zip without a manifest", "another format's manifest"]
)
def test_a_file_that_is_not_a_dump_is_refused(sqlite_template: Path, tmp_path: Path, kind: str) -> None:
    db, path = empty_workspace(sqlite_template, tmp_path)
    before = checkpointed_bytes(path)
    file = not_dumps(tmp_path)[kind]
    stderr = refused(db, "restore", file)
    assert f"{file.name} is not a Voronka dump" in stderr
    assert checkpointed_bytes(path) == before


def test_a_dump_of_another_schema_is_refused(demo: tuple[str, Path], sqlite_template: Path, tmp_path: Path) -> None:
    ok(demo[0], "dump", tmp_path / "demo.zip")
    with zipfile.ZipFile(tmp_path / "demo.zip") as src, zipfile.ZipFile(tmp_path / "old.zip", "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "manifest.json":
                data = json.dumps({**json.loads(data), "schema": "0000_older"}).encode()
            dst.writestr(name, data)
    db, path = empty_workspace(sqlite_template, tmp_path)
    before = checkpointed_bytes(path)
    stderr = refused(db, "restore", tmp_path / "old.zip")
    assert "was dumped at schema '0000_older'" in stderr
    assert checkpointed_bytes(path) == before


def damaged(source: Path, target: Path, how: str) -> Path:
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if how == "a table is missing" and name == "deals.jsonl":
                continue
            if how == "the manifest is not JSON" and name == "manifest.json":
                data = b"not json"
            if how == "a line is cut" and name == "users.jsonl":
                data = data[: len(data) // 2]
            dst.writestr(name, data)
    return target


@pytest.mark.parametrize("how", ["a table is missing", "the manifest is not JSON", "a line is cut"])
def test_a_damaged_dump_is_refused_with_a_clear_error(
    demo: tuple[str, Path], sqlite_template: Path, tmp_path: Path, how: str
) -> None:
    ok(demo[0], "dump", tmp_path / "demo.zip")
    broken = damaged(tmp_path / "demo.zip", tmp_path / "broken.zip", how)
    db, path = empty_workspace(sqlite_template, tmp_path)
    before = checkpointed_bytes(path)
    stderr = refused(db, "restore", broken)
    assert "broken.zip" in stderr
    assert checkpointed_bytes(path) == before
