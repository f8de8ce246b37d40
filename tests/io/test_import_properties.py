"""Properties of file imports, checked on generated files through the CLI against real SQLite workspaces.

- export → import gives the same deals (see :func:`test_export_then_import_gives_the_same_deals` for what "same"
  means);
- importing a file twice equals importing it once (deals and stage histories);
- a big file, read column-wise (the fast path), lands as the same rows read row by row;
- one bad row anywhere refuses the whole import and leaves the workspace file byte-for-byte unchanged.

Workspaces are made inside each example (a copy of the session's migrated template), never by function-scoped
fixtures, so that Hypothesis examples do not share state.

Deterministic tests at the end pin down the inputs on which these properties are known to break today (xfail).
"""

from __future__ import annotations

import csv
import io
import shutil
import sqlite3
import traceback
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import aliased
from typer.testing import CliRunner, Result

from voronka.cli.main import app
from voronka.domain.pipeline import StageKind
from voronka.io import columnar
from voronka.io.tables import open_table
from voronka.service.workspace import Workspace
from voronka.store.schema import deals, loss_reasons, pipelines, stage_moves, stages, users

runner = CliRunner()


FAST_PATH_BYTES = 64 << 10


@pytest.fixture(autouse=True, scope="module")
def _small_fast_path_threshold() -> Iterator[None]:
    """Files from 64 KiB on take the column-wise fast path in this module (4 MiB in use): the same two readers
    meet the same properties on files a sixtieth the size, so each example costs milliseconds, not a second."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(columnar, "MIN_BYTES", FAST_PATH_BYTES)
        yield


def examples(n: int) -> settings:
    """Each property runs in about 10 s; files padded past the fast-path threshold cost more, so fewer examples."""
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


BASE = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PipeSpec:
    name: str
    open: tuple[str, ...]
    won: str
    lost: str


# The second name needs quoting in a CSV (a quote and the `;` delimiter); all stage names are guessed right by
# `--create-missing` (won/lost by their amoCRM-like names).
PIPES = (
    PipeSpec(
        "Продажи",
        ("Первичный контакт", "Переговоры", "Принимают решение"),
        "Успешно реализовано",
        "Закрыто и не реализовано",
    ),
    PipeSpec('Опт "Север"; B2B', ("Заявка", "Счёт выставлен"), "Оплачено", "Отказ"),
)
STAGES = [(p.name, s, "open") for p in PIPES for s in p.open] + [
    x for p in PIPES for x in ((p.name, p.won, "won"), (p.name, p.lost, "lost"))
]
REASONS = ("Дорого", "Не дозвонились", 'Выбрали "конкурента"; другое')
OWNERS = (None, "Анна Петрова", "Иван Смирнов", 'Ольга "Оля" Кузнецова', "John Smith; Jr.")
SOURCES = (None, "Яндекс.Директ", "Сайт (SEO)", "Рекомендации; друзья")
SEGMENTS = (None, "Частные лица", "B2B")
CURRENCIES = ("RUB", "USD", "EUR")
TITLE_CHARS = list(
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯabcxyzABCXYZ0123456789 .,;:\"'()«»№—-"
)
AMO_HEADER = [
    "ID",
    "Название сделки",
    "Бюджет",
    "Валюта",
    "Ответственный",
    "Дата создания",
    "Дата закрытия",
    "Воронка",
    "Этап сделки",
    "Причина отказа",
    "Источник",
    "Сегмент",
    "Теги",
]
MOVES_HEADER = ["Сделка", "Воронка", "Этап", "Время", "Кто", "Причина", "Комментарий"]


# -- the CLI and the workspace files ----------------------------------------------------------------------------


def cli(db: str, *args: str | Path) -> Result:
    return runner.invoke(app, ["--db", db, *map(str, args)])


def crash(result: Result) -> str:
    exc = result.exception
    if exc is None or isinstance(exc, SystemExit):
        return result.output
    return result.output + "".join(traceback.format_exception(exc))


def ok(db: str, *args: str | Path) -> str:
    result = cli(db, *args)
    assert result.exit_code == 0, crash(result)
    return result.stdout


def refused(db: str, *args: str | Path) -> str:
    """Run a command that must fail cleanly: exit code 1 and `Error: …` on stderr, no traceback."""
    result = cli(db, *args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), crash(result)
    assert result.stderr.startswith("Error: "), result.output
    return result.stderr


def new_workspace(template: Path, directory: Path, *, with_pipelines: bool = True) -> tuple[str, Path]:
    path = directory / f"ws-{uuid.uuid4().hex[:8]}.db"
    shutil.copyfile(template, path)
    url = f"sqlite:///{path}"
    if with_pipelines:
        ws = Workspace.connect(url)
        try:
            for p in PIPES:
                ws.create_pipeline(p.name, stages=list(p.open), won=p.won, lost=[p.lost], reason_required=False)
        finally:
            ws.close()
    return url, path


def checkpointed_bytes(path: Path) -> bytes:
    """The database file's bytes with everything committed moved out of the WAL into the file."""
    con = sqlite3.connect(path)
    try:
        busy, _log, _moved = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0, "a connection kept the WAL busy"
    finally:
        con.close()
    return path.read_bytes()


def dump_members(db: str, path: Path) -> dict[str, bytes]:
    ok(db, "dump", path)
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def summary_line(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("Import of "))


def problem_lines(stderr: str) -> list[str]:
    return [line[4:] for line in stderr.splitlines() if line.startswith("  - ")]


# -- generated deals and their amoCRM-style file --------------------------------------------------------------


@dataclass(frozen=True)
class GenDeal:
    ext: str
    title: str
    pipeline: str
    stage: str
    kind: str
    amount: Decimal | None
    amount_style: int
    currency: str
    owner: str | None
    source: str | None
    segment: str | None
    created: datetime
    closed: datetime | None
    reason: str | None
    tags: str


def titles(newlines: bool) -> st.SearchStrategy[str]:
    chars = TITLE_CHARS + (["\n", "\r\n"] if newlines else [])
    # A title such as "Р«Р«" is, byte for byte, UTF-8 "ЫЫ" inside a Windows-1251 file: the importer refuses it as a
    # mixed-encoding row (by design, see test_broken_rows), so generated titles avoid that pattern.
    text = st.lists(st.sampled_from(chars), min_size=1, max_size=25).map("".join).map(str.strip)
    return text.filter(lambda t: bool(t) and not columnar.is_mojibake(t))


@st.composite
def one_deal(draw: st.DrawFn, newlines: bool = True) -> GenDeal:
    pipe, stage, kind = draw(st.sampled_from(STAGES))
    created = BASE + timedelta(minutes=draw(st.integers(0, 600 * 24 * 60)))
    closed = created + timedelta(minutes=draw(st.integers(0, 90 * 24 * 60))) if kind != "open" else None
    # Up to a billion with kopecks: 13 significant digits (see test_reimport_of_a_huge_amount_changes_nothing).
    cents = draw(st.none() | st.integers(0, 10**11))
    return GenDeal(
        ext="",
        title=draw(titles(newlines)),
        pipeline=pipe,
        stage=stage,
        kind=kind,
        amount=None if cents is None else Decimal(cents).scaleb(-2),
        amount_style=draw(st.integers(0, 3)),
        currency=draw(st.sampled_from(CURRENCIES)),
        owner=draw(st.sampled_from(OWNERS)),
        source=draw(st.sampled_from(SOURCES)),
        segment=draw(st.sampled_from(SEGMENTS)),
        created=created,
        closed=closed,
        reason=draw(st.sampled_from((None, *REASONS))) if kind == "lost" else None,
        tags=draw(st.sampled_from(("", "vip", "опт; срочно"))),
    )


def numbered(ds: list[GenDeal], first: int = 1001) -> list[GenDeal]:
    return [replace(d, ext=str(first + i)) for i, d in enumerate(ds)]


@st.composite
def deal_sets(draw: st.DrawFn, newlines: bool = True, max_size: int = 12) -> list[GenDeal]:
    ds = draw(st.lists(one_deal(newlines), min_size=1, max_size=max_size))
    return numbered(ds)


def money(amount: Decimal | None, style: int) -> str:
    """Bitrix/amoCRM/Excel ways to write an amount: ``1234567,89``, ``1 234 567,89``, NBSP groups, ``… руб.``."""
    if amount is None:
        return ""
    whole, frac = divmod(int(amount * 100), 100)
    groups = f"{whole:,}".replace(",", ("", " ", "\u00a0", " ")[style])
    text = groups + (f",{frac:02d}" if frac or style == 1 else "")
    return text + (" руб." if style == 3 else "")


def ru_time(t: datetime | None) -> str:
    return "" if t is None else t.strftime("%d.%m.%Y %H:%M")


def amo_cells(d: GenDeal) -> list[str]:
    return [
        d.ext,
        d.title,
        money(d.amount, d.amount_style),
        d.currency,
        d.owner or "",
        ru_time(d.created),
        ru_time(d.closed),
        d.pipeline,
        d.stage,
        d.reason or "",
        d.source or "",
        d.segment or "",
        d.tags,
    ]


def csv_line(cells: list[str]) -> str:
    buf = io.StringIO(newline="")
    csv.writer(buf, delimiter=";", lineterminator="\r\n").writerow(cells)
    return buf.getvalue()


def write_csv(path: Path, header: list[str], rows: list[list[str] | bytes], encoding: str) -> Path:
    """``;``-separated with CRLF line ends like Excel; a row given as bytes is written as it is."""
    enc = "utf-8" if encoding == "utf-8-sig" else encoding
    lines = [b"\xef\xbb\xbf" if encoding == "utf-8-sig" else b"", csv_line(header).encode(enc)]
    lines += [row if isinstance(row, bytes) else csv_line(row).encode(enc) for row in rows]
    path.write_bytes(b"".join(lines))
    return path


PAD_COLUMNS = 42


def amo_table(ds: list[GenDeal], *, with_id: bool = True, big: bool = False) -> tuple[list[str], list[list[str]]]:
    """The header and rows of an amoCRM-style file. ``big`` pads it past the size from which CSV files are read
    column-wise (the fast path): extra columns holding ``x`` and trailing spaces, which both readers trim (each
    value stays under the csv module's 128 KB field limit)."""
    header, rows = AMO_HEADER, [amo_cells(d) for d in ds]
    if not with_id:
        header, rows = header[1:], [r[1:] for r in rows]
    if big:
        spaces = columnar.MIN_BYTES // (len(rows) * PAD_COLUMNS) + 1000
        header = [*header, *(f"Поле {k}" for k in range(PAD_COLUMNS))]
        rows = [[*r, *["x" + " " * spaces] * PAD_COLUMNS] for r in rows]
    return header, rows


def write_amo(path: Path, ds: list[GenDeal], encoding: str, *, with_id: bool = True, big: bool = False) -> Path:
    header, rows = amo_table(ds, with_id=with_id, big=big)
    return write_csv(path, header, list(rows), encoding)


def tagged(ds: list[GenDeal]) -> list[GenDeal]:
    """Every deal with a tag: the fast path crashes on an empty value in an extra column (see
    test_a_big_file_with_an_empty_extra_value_imports)."""
    return [replace(d, tags=d.tags or "vip") for d in ds]


# -- what a workspace holds ---------------------------------------------------------------------------------------


def workspace_deals(db: str) -> dict[str, dict[str, Any]]:
    """Every deal by external id, with names instead of ids and the loss reason of its last move."""
    owner, reason, moves = aliased(users), aliased(loss_reasons), aliased(stage_moves)
    last = select(func.max(moves.c.id)).where(moves.c.deal_id == deals.c.id).scalar_subquery()
    stmt = (
        select(
            deals.c.external_id,
            deals.c.title,
            pipelines.c.name.label("pipeline"),
            stages.c.name.label("stage"),
            stages.c.kind,
            owner.c.name.label("owner"),
            deals.c.amount,
            deals.c.currency,
            deals.c.source,
            deals.c.segment,
            deals.c.created_at,
            deals.c.stage_since,
            reason.c.name.label("reason"),
        )
        .join_from(deals, pipelines, pipelines.c.id == deals.c.pipeline_id)
        .join(stages, stages.c.id == deals.c.stage_id)
        .outerjoin(owner, owner.c.id == deals.c.owner_id)
        .join(stage_moves, stage_moves.c.id == last)
        .outerjoin(reason, reason.c.id == stage_moves.c.reason_id)
    )
    ws = Workspace.connect(db)
    try:
        with ws.engine.connect() as conn:
            return {r.external_id: dict(r._mapping) for r in conn.execute(stmt)}
    finally:
        ws.close()


def expected_from_file(d: GenDeal) -> dict[str, Any]:
    """What importing ``d`` must store: the file's values, the close time as the time of the last stage."""
    return {
        "external_id": d.ext,
        "title": d.title,
        "pipeline": d.pipeline,
        "stage": d.stage,
        "kind": d.kind,
        "owner": d.owner,
        "amount": d.amount,
        "currency": d.currency,
        "source": d.source,
        "segment": d.segment,
        "created_at": d.created,
        "stage_since": d.closed or d.created,
        "reason": d.reason,
    }


SAME = (
    "title",
    "pipeline",
    "stage",
    "kind",
    "owner",
    "amount",
    "currency",
    "source",
    "segment",
    "created_at",
    "stage_since",
)


# -- export → import ------------------------------------------------------------------------------------------


def export_mapping(directory: Path) -> Path:
    """Read an `export deals` file back: deals keyed by its external_id, the time of the current stage as the
    close time (it is, for won and lost deals)."""
    path = directory / "mapping.yaml"
    path.write_text("columns:\n  external_id: external_id\n  closed: stage_since\n", encoding="utf-8")
    return path


@examples(40)
@given(ds=deal_sets(), encoding=st.sampled_from(["cp1251", "utf-8-sig"]))
def test_export_then_import_gives_the_same_deals(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, ds: list[GenDeal], encoding: str
) -> None:
    """An amoCRM-style file (`;`, cp1251 or UTF-8 with BOM, decimal comma, NBSP thousands, ``dd.mm.yyyy HH:MM``)
    lands in workspace A as written; ``voronka export deals --locale ru`` of A imported into a fresh workspace B
    (``--create-missing``, a mapping that keys deals by the exported ``external_id`` and reads ``stage_since`` as
    the close time) gives the same deals.

    "Same" means: the same external ids, and for each deal the same title (quotes, ``;`` and line breaks kept),
    pipeline, stage and its kind (open/won/lost), owner, amount (to the kopeck), currency, source, segment,
    creation time and the time the deal entered its current stage. Not compared: database ids, versions, custom
    fields (B keeps A's extra export columns there), and loss reasons — ``export deals`` has no loss-reason
    column, so they are checked only between the file and A.
    """
    tmp = tmp_path_factory.mktemp("roundtrip")
    a, _ = new_workspace(sqlite_template, tmp)
    amo = write_amo(tmp / "amocrm.csv", ds, encoding)
    out = ok(a, "import", "deals", amo)
    assert f"read {len(ds)}, inserted {len(ds)}, updated 0, unchanged 0, rejected 0" in out

    in_a = workspace_deals(a)
    assert in_a == {d.ext: expected_from_file(d) for d in ds}

    exported = tmp / "deals.csv"
    ok(a, "export", "deals", "-o", exported, "--locale", "ru")
    assert exported.read_bytes().startswith(b"\xef\xbb\xbf")
    b, _ = new_workspace(sqlite_template, tmp, with_pipelines=False)
    out = ok(b, "import", "deals", exported, "--mapping", export_mapping(tmp), "--create-missing")
    assert f"read {len(ds)}, inserted {len(ds)}" in out

    in_b = workspace_deals(b)
    assert set(in_b) == set(in_a)
    for ext, deal in in_a.items():
        assert {k: in_b[ext][k] for k in SAME} == {k: deal[k] for k in SAME}, ext


# -- importing twice ------------------------------------------------------------------------------------------


@examples(30)
@given(
    ds=deal_sets(),
    encoding=st.sampled_from(["cp1251", "utf-8-sig"]),
    with_id=st.booleans(),
    copies=st.integers(1, 2),
    big=st.booleans(),
)
def test_importing_deals_twice_equals_importing_once(
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    ds: list[GenDeal],
    encoding: str,
    with_id: bool,
    copies: int,
    big: bool,
) -> None:
    """Same file twice: the second run reports nothing inserted or updated and every table dumps to the same bytes.

    Without an ID column the deals are keyed by row digests; identical rows (``copies`` = 2) are kept apart.
    ``big`` files are read column-wise (unless a title has a line break)."""
    tmp = tmp_path_factory.mktemp("twice")
    db, _ = new_workspace(sqlite_template, tmp)
    rows = ds * copies if not with_id else ds
    path = write_amo(tmp / "deals.csv", tagged(rows) if big else rows, encoding, with_id=with_id, big=big)

    first = summary_line(ok(db, "import", "deals", path))
    assert f"read {len(rows)}, inserted {len(rows)}, updated 0" in first
    once = dump_members(db, tmp / "once.zip")
    second = summary_line(ok(db, "import", "deals", path))
    assert f"read {len(rows)}, inserted 0, updated 0, unchanged {len(rows)}, rejected 0" in second
    assert "stage moves added" not in second
    assert dump_members(db, tmp / "twice.zip") == once


@dataclass(frozen=True)
class GenMove:
    deal: str
    pipeline: str
    stage: str
    at: datetime
    by: str | None
    reason: str | None
    comment: str


@st.composite
def move_logs(draw: st.DrawFn) -> list[GenMove]:
    """A few deals, each with a path through the stages of one pipeline (any order, repeats, ties in time),
    written in a shuffled order."""
    moves = []
    for k in range(draw(st.integers(1, 5))):
        pipe = draw(st.sampled_from(PIPES))
        kinds = {**{s: "open" for s in pipe.open}, pipe.won: "won", pipe.lost: "lost"}
        at = BASE + timedelta(minutes=draw(st.integers(0, 300 * 24 * 60)))
        for stage in draw(st.lists(st.sampled_from(list(kinds)), min_size=1, max_size=6)):
            at += timedelta(minutes=draw(st.sampled_from([0, 1, 90, 3 * 24 * 60])))
            lost = kinds[stage] == "lost"
            moves.append(
                GenMove(
                    deal=f"Сделка №{k}",
                    pipeline=pipe.name,
                    stage=stage,
                    at=at,
                    by=draw(st.sampled_from(OWNERS)),
                    reason=draw(st.sampled_from((None, *REASONS))) if lost else None,
                    comment=draw(st.sampled_from(("", "перезвонить; завтра", 'сказал "подумаем"\nпотом'))),
                )
            )
    return draw(st.permutations(moves))


def move_cells(m: GenMove) -> list[str]:
    return [m.deal, m.pipeline, m.stage, ru_time(m.at), m.by or "", m.reason or "", m.comment]


@examples(40)
@given(moves=move_logs(), encoding=st.sampled_from(["cp1251", "utf-8-sig"]))
def test_importing_a_history_twice_equals_importing_once(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, moves: list[GenMove], encoding: str
) -> None:
    """Every move of a stage history lands once (repeats and ties included); a second run adds nothing."""
    tmp = tmp_path_factory.mktemp("history")
    db, _ = new_workspace(sqlite_template, tmp)
    path = write_csv(tmp / "moves.csv", MOVES_HEADER, [move_cells(m) for m in moves], encoding)
    n_deals = len({m.deal for m in moves})

    first = summary_line(ok(db, "import", "moves", path))
    assert f"read {len(moves)}, inserted {n_deals}, updated 0, unchanged 0, rejected 0; {len(moves)} stage" in first
    once = dump_members(db, tmp / "once.zip")
    second = summary_line(ok(db, "import", "moves", path))
    assert f"read {len(moves)}, inserted 0, updated 0, unchanged {n_deals}, rejected 0" in second
    assert "stage moves added" not in second
    assert dump_members(db, tmp / "twice.zip") == once


# -- big files: the column-wise fast path --------------------------------------------------------------------


@examples(15)
@given(ds=deal_sets(newlines=False), encoding=st.sampled_from(["cp1251", "utf-8-sig"]), with_id=st.booleans())
def test_a_big_file_lands_as_the_same_rows_read_row_by_row(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, ds: list[GenDeal], encoding: str, with_id: bool
) -> None:
    """Padded past ``columnar.MIN_BYTES`` a file is read column-wise; the same file read row by row (the fast path
    switched off) lands the same: the same summary, and every table dumps to the same bytes (but the pipelines,
    made apart at different times). Rows without ids are keyed by their cells as written, on both paths."""
    tmp = tmp_path_factory.mktemp("fast")
    header, rows = amo_table(tagged(ds), with_id=with_id, big=True)
    big = write_csv(tmp / "deals.csv", header, list(rows), encoding)
    assert columnar.read_columns(open_table(big)) is not None, "the padded file is not on the fast path"
    a, _ = new_workspace(sqlite_template, tmp)
    b, _ = new_workspace(sqlite_template, tmp)

    fast_line = summary_line(ok(a, "import", "deals", big))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(columnar, "MIN_BYTES", 1 << 62)
        slow_line = summary_line(ok(b, "import", "deals", big))
    assert fast_line == slow_line
    assert workspace_deals(a) == workspace_deals(b)
    fast, slow = dump_members(a, tmp / "a.zip"), dump_members(b, tmp / "b.zip")
    assert {k: v for k, v in fast.items() if k != "pipelines.jsonl"} == {
        k: v for k, v in slow.items() if k != "pipelines.jsonl"
    }


# -- a bad row refuses everything ----------------------------------------------------------------------------

COL = {name: i for i, name in enumerate(AMO_HEADER)}


def corrupt_value(column: str, values: list[str]) -> Any:
    def apply(rows: list[list[str]], i: int, choice: int) -> list[str] | bytes:
        row = list(rows[i])
        row[COL[column]] = values[choice % len(values)]
        return row

    return apply


def truncate(rows: list[list[str]], i: int, choice: int) -> list[str]:
    return rows[i][: 1 + choice % (len(rows[i]) - 1)]


def extra_field(rows: list[list[str]], i: int, choice: int) -> list[str]:
    """A value split by an unquoted delimiter. The row's last field has data: when it is empty, the shifted row
    has an empty extra field, which the reader allows (a trailing delimiter), and its values are misread instead."""
    row = [*rows[i][:-1], rows[i][-1] or "vip"]
    row.insert(1 + choice % len(row), "лишнее поле")
    return row


def duplicate_id(rows: list[list[str]], i: int, choice: int) -> list[str]:
    row = list(rows[i])
    row[0] = rows[choice % i][0]  # an earlier row's id (i > 0)
    return row


def in_cp1251(rows: list[list[str]], i: int, choice: int) -> bytes:
    return csv_line(rows[i]).encode("cp1251")


CORRUPTIONS: dict[str, Any] = {
    "created date": corrupt_value("Дата создания", ["31.02.2026 10:00", "вчера", "2026-13-01", "01.01.26"]),
    "closed date": corrupt_value("Дата закрытия", ["32.01.2026", "завтра", "2026-02-30"]),
    "amount": corrupt_value("Бюджет", ["abc", "-500", "1,2,3", "12..5", "NaN"]),
    "currency": corrupt_value("Валюта", ["РУБЛИ", "R", "US$"]),
    "empty title": corrupt_value("Название сделки", [""]),
    "unknown stage": corrupt_value("Этап сделки", ["Думают", "Успешно"]),
    "unknown pipeline": corrupt_value("Воронка", ["Маркетинг"]),
    "truncated line": truncate,
    "unquoted delimiter": extra_field,
    "duplicate id": duplicate_id,
    "cp1251 row in a UTF-8 file": in_cp1251,
}


@examples(30)
@given(
    before=deal_sets(newlines=False, max_size=6),
    ds=deal_sets(newlines=False, max_size=10),
    kind=st.sampled_from(sorted(CORRUPTIONS)),
    position=st.integers(0, 100),
    choice=st.integers(0, 100),
    encoding=st.sampled_from(["cp1251", "utf-8-sig"]),
    big=st.booleans(),
)
def test_a_bad_row_anywhere_leaves_the_workspace_unchanged(
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    before: list[GenDeal],
    ds: list[GenDeal],
    kind: str,
    position: int,
    choice: int,
    encoding: str,
    big: bool,
) -> None:
    """A workspace with deals; a second file (new deals and changes to old ones) whose row at a random position is
    broken in one way: the import is refused with one problem naming that row, and the database file (after a WAL
    checkpoint) has the same bytes. A dry run of the unbroken file leaves it unchanged too.

    Titles here have no line breaks, so a row's number is both its line and its spreadsheet row (multi-line
    records: see test_broken_rows.py). ``big`` files start on the fast path, which must hand a file with a bad row
    to the row reader or leave the refusal to the landing step."""
    if kind == "cp1251 row in a UTF-8 file":
        encoding = "utf-8-sig"  # in a cp1251 file, the same bytes are the file's own encoding
    tmp = tmp_path_factory.mktemp("atomic")
    db, path = new_workspace(sqlite_template, tmp)
    ok(db, "import", "deals", write_amo(tmp / "first.csv", before, "utf-8-sig"))
    if kind == "duplicate id" and len(ds) == 1:
        ds = [*ds, ds[0]]
    ds = numbered(ds, first=1001 + len(before) // 2)  # some ids are the first file's: updates, not inserts
    bad_at = 1 + position % (len(ds) - 1) if kind == "duplicate id" else position % len(ds)
    if big:
        ds = tagged(ds)
    header, rows = amo_table(ds, big=big)
    good = write_csv(tmp / "good.csv", header, list(rows), encoding)
    original = checkpointed_bytes(path)

    assert "dry run: nothing was saved" in ok(db, "import", "deals", good, "--dry-run")
    assert checkpointed_bytes(path) == original

    bad_rows: list[list[str] | bytes] = list(rows)
    bad_rows[bad_at] = CORRUPTIONS[kind](rows, bad_at, choice)
    write_csv(tmp / "bad.csv", header, bad_rows, encoding)
    line = bad_at + 2
    stderr = refused(db, "import", "deals", tmp / "bad.csv")
    assert "1 problem(s); nothing was imported." in stderr
    [problem] = problem_lines(stderr)
    assert problem.startswith(f"bad.csv, row {line}:") or problem.startswith(f"bad.csv, row {line}, "), problem
    assert checkpointed_bytes(path) == original


# -- known breaks of these properties (bugs to fix) -------------------------------------------------------------


def one(title: str = "Кухня", **kw: Any) -> GenDeal:
    base = GenDeal(
        "1001",
        title,
        "Продажи",
        "Переговоры",
        "open",
        Decimal("150000.00"),
        1,
        "RUB",
        "Анна Петрова",
        None,
        None,
        BASE,
        None,
        None,
        "",
    )
    return replace(base, **kw)


def test_export_import_keeps_a_title_with_a_lone_carriage_return(sqlite_template: Path, tmp_path: Path) -> None:
    a, _ = new_workspace(sqlite_template, tmp_path)
    ws = Workspace.connect(a)
    ws.add_deal("Продажи", "Строка 1\rстрока 2", amount="10", external_id="cr", external_source="file")
    ws.close()
    ok(a, "export", "deals", "-o", tmp_path / "deals.csv", "--locale", "ru")
    (tmp_path / "m.yaml").write_text("columns:\n  external_id: external_id\n", encoding="utf-8")
    b, _ = new_workspace(sqlite_template, tmp_path)
    ok(b, "import", "deals", tmp_path / "deals.csv", "--mapping", tmp_path / "m.yaml")
    assert workspace_deals(b)["cr"]["title"] == "Строка 1\rстрока 2"


def test_round_trip_into_a_fresh_workspace_when_a_pipeline_has_only_closed_deals(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """--create-missing infers a pipeline from won/lost stage names alone (it gets an open stage of its own)."""
    ds = numbered([one(stage="Успешно реализовано", kind="won", closed=BASE + timedelta(days=3))])
    a, _ = new_workspace(sqlite_template, tmp_path)
    ok(a, "import", "deals", write_amo(tmp_path / "amo.csv", ds, "utf-8-sig"))
    ok(a, "export", "deals", "-o", tmp_path / "deals.csv", "--locale", "ru")
    b, _ = new_workspace(sqlite_template, tmp_path, with_pipelines=False)
    ok(b, "import", "deals", tmp_path / "deals.csv", "--mapping", export_mapping(tmp_path), "--create-missing")
    [deal] = workspace_deals(b).values()
    assert (deal["stage"], deal["kind"]) == ("Успешно реализовано", StageKind.WON.value)
    assert deal["stage_since"] == BASE + timedelta(days=3)


def test_an_amount_too_large_to_keep_exact_is_refused(sqlite_template: Path, tmp_path: Path) -> None:
    """SQLite keeps money as a REAL: exact to the kopeck below 10^13, so larger amounts are refused, not rounded."""
    db, _ = new_workspace(sqlite_template, tmp_path)
    path = write_amo(tmp_path / "deals.csv", numbered([one(amount=Decimal("99999999999999.99"))]), "utf-8-sig")
    result = cli(db, "import", "deals", path)
    assert result.exit_code == 1 and "too large for an amount" in result.output
    edge = write_amo(tmp_path / "edge.csv", numbered([one(amount=Decimal("9999999999999.99"))]), "utf-8-sig")
    ok(db, "import", "deals", edge)
    assert "inserted 0, updated 0, unchanged 1" in summary_line(ok(db, "import", "deals", edge))
    assert workspace_deals(db)["1001"]["amount"] == Decimal("9999999999999.99")


def test_a_big_file_with_an_empty_extra_value_imports(sqlite_template: Path, tmp_path: Path) -> None:
    db, _ = new_workspace(sqlite_template, tmp_path)
    ds = numbered([one(tags=""), one(title="Шкаф" + " " * columnar.MIN_BYTES, tags="vip")])
    path = write_amo(tmp_path / "deals.csv", ds, "utf-8-sig")
    assert "read 2, inserted 2, updated 0" in ok(db, "import", "deals", path)
    assert len(workspace_deals(db)) == 2


def test_a_file_without_ids_that_grows_past_the_fast_path_size_keeps_its_deals(
    sqlite_template: Path, tmp_path: Path
) -> None:
    db, _ = new_workspace(sqlite_template, tmp_path)
    rows = [amo_cells(d)[1:] for d in numbered([one(owner="Анна Петрова "), one(title="Шкаф")])]
    ok(db, "import", "deals", write_csv(tmp_path / "deals.csv", AMO_HEADER[1:], list(rows), "utf-8-sig"))
    grown = [*rows, amo_cells(one(title="Новая" + " " * columnar.MIN_BYTES))[1:]]
    second = ok(db, "import", "deals", write_csv(tmp_path / "deals.csv", AMO_HEADER[1:], list(grown), "utf-8-sig"))
    assert "read 3, inserted 1, updated 0, unchanged 2" in second
    assert sorted(d["title"] for d in workspace_deals(db).values()) == ["Кухня", "Новая", "Шкаф"]


def test_a_windows_1251_title_that_is_one_utf8_letter_by_chance_imports(sqlite_template: Path, tmp_path: Path) -> None:
    """Found by Hypothesis: "Р«" in Windows-1251 is, byte for byte, UTF-8 "Ы"; one such pair is ordinary text."""
    db, _ = new_workspace(sqlite_template, tmp_path)
    ds = numbered([one(title="ааа"), one(title="Р«")])
    assert "read 2, inserted 2" in ok(db, "import", "deals", write_amo(tmp_path / "deals.csv", ds, "cp1251"))
    assert sorted(d["title"] for d in workspace_deals(db).values()) == ["Р«", "ааа"]
