"""A deals file with many kinds of broken rows gets one clear message per problem, and never a traceback.

The file is what a Russian team gets from amoCRM or Excel: `;`, UTF-8 with a BOM, decimal commas, dd.mm.yyyy
dates. Each broken row is broken in one way (one row in two); valid-but-unusual rows (``1 234,5 руб.``, NBSP
thousands, Excel serial dates, ISO times with a zone) must land as parsed. Every kind is also imported alone, so
a known bug marks only its own case (xfail, with the bug in the reason).

Row numbers: the header is row 1; no record here spans two lines, so a row's number is both its line in the file
and its row in a spreadsheet (multi-line records have their own test). A problem with a value names its column
(the file's header) and the value; a problem with the whole row (too few or too many fields, undecodable bytes)
names no column and shows the start of the row.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import sqlite3
import traceback
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from voronka.cli.main import app
from voronka.service.workspace import Workspace

runner = CliRunner()

HEADER = [
    "ID",
    "Название сделки",
    "Воронка",
    "Этап сделки",
    "Бюджет",
    "Валюта",
    "Ответственный",
    "Дата создания",
    "Дата закрытия",
    "Причина отказа",
    "Источник",
]
PIPELINE = "Продажи"
WON, LOST = "Успешно реализовано", "Закрыто и не реализовано"
ANY = "*"  # an expected column or value that is not checked


def deal(id_: str, title: str, changes: dict[str, str] | None = None) -> list[str]:
    """A valid row, with ``changes`` by header name."""
    values = {
        "ID": id_,
        "Название сделки": title,
        "Воронка": PIPELINE,
        "Этап сделки": "Переговоры",
        "Бюджет": "150000",
        "Валюта": "RUB",
        "Ответственный": "Анна Петрова",
        "Дата создания": "01.03.2026 10:00",
        "Дата закрытия": "",
        "Причина отказа": "",
        "Источник": "Сайт",
    }
    assert not set(changes or {}) - set(values)
    values.update(changes or {})
    return [values[h] for h in HEADER]


def csv_line(cells: list[str]) -> str:
    buf = io.StringIO(newline="")
    csv.writer(buf, delimiter=";", lineterminator="\r\n").writerow(cells)
    return buf.getvalue()


@dataclass(frozen=True)
class Expect:
    """One message: the column (header) and value it names, and a piece of its reason."""

    column: str | None
    value: str | None
    reason: str


@dataclass(frozen=True)
class Kind:
    name: str
    row: list[str] | bytes  # the row's cells, or the raw bytes of its line
    expect: tuple[Expect, ...]
    encoding: str = "utf-8-sig"  # of the file, when the kind is imported alone
    refuse_bug: str | None = None  # why the refusal is wrong today
    skip_bug: str | None = None  # why --skip-bad-rows is wrong today
    last: bool = False  # must be the last line of the file

    @property
    def cells(self) -> list[str] | None:
        return None if isinstance(self.row, bytes) else self.row


def one(column: str | None, value: str | None, reason: str) -> tuple[Expect, ...]:
    return (Expect(column, value, reason),)


# Every kind below used to have a known bug pinned here as an xfail; all are fixed.

KINDS = [
    Kind(
        "impossible date",
        deal("101", "Плохая дата", {"Дата создания": "31.02.2026 10:00"}),
        one("Дата создания", "31.02.2026 10:00", "impossible date"),
    ),
    Kind(
        "a word for a date",
        deal("102", "Вчерашняя", {"Дата создания": "вчера"}),
        one("Дата создания", "вчера", "not a date"),
    ),
    Kind(
        "month 13",
        deal("103", "Тринадцатый месяц", {"Дата создания": "2026-13-01"}),
        one("Дата создания", "2026-13-01", "not a date"),
    ),
    Kind(
        "impossible close date",
        deal("104", "Закрыта 30 февраля", {"Этап сделки": WON, "Дата закрытия": "30.02.2026"}),
        one("Дата закрытия", "30.02.2026", "impossible date"),
    ),
    Kind(
        "a word for an amount",
        deal("105", "Сумма словами", {"Бюджет": "abc"}),
        one("Бюджет", "abc", "not a number"),
    ),
    Kind(
        "negative amount",
        deal("106", "Минус", {"Бюджет": "-500"}),
        one("Бюджет", "-500", "negative amount"),
    ),
    Kind(
        "three commas",
        deal("107", "Три запятые", {"Бюджет": "1,2,3"}),
        one("Бюджет", "1,2,3", "not a number"),
    ),
    Kind(
        "empty title",
        deal("108", ""),
        one("Название сделки", "", "empty title"),
    ),
    Kind(
        "empty stage",
        deal("109", "Без этапа", {"Этап сделки": ""}),
        one("Этап сделки", "", "empty stage"),
    ),
    Kind(
        "empty pipeline",
        deal("110", "Без воронки", {"Воронка": ""}),
        one("Воронка", "", "empty pipeline"),
    ),
    Kind(
        "unknown stage",
        deal("111", "Неизвестный этап", {"Этап сделки": "Думают"}),
        one("Этап сделки", "Думают", "unknown stage"),
    ),
    Kind(
        "unknown pipeline",
        deal("112", "Неизвестная воронка", {"Воронка": "Маркетинг"}),
        one("Воронка", "Маркетинг", "unknown pipeline"),
    ),
    Kind(
        "duplicate id",
        deal("1", "Дубль первой строки"),
        one("ID", "1", "duplicate deal id: row 2 has the same id"),
    ),
    Kind(
        "truncated line",
        ["114", "Обрезано", PIPELINE, "Переговоры"],
        one(None, ANY, "4 fields where the header has 11"),
    ),
    Kind(
        "unquoted delimiter",
        ["115", "Кухня", "угловая", *deal("115", "x")[2:]],
        one(None, ANY, "an unquoted delimiter"),
    ),
    Kind(
        "a Windows-1251 row in a UTF-8 file",
        csv_line(deal("116", "Кодировка")).encode("cp1251"),
        one(None, ANY, "mixes encodings"),
    ),
    Kind(
        "two problems in one row",
        deal("117", "Две ошибки", {"Бюджет": "много", "Дата создания": "позавчера"}),
        (Expect("Бюджет", "много", "not a number"), Expect("Дата создания", "позавчера", "not a date")),
    ),
    Kind(
        "currency",
        deal("118", "Рубли словом", {"Валюта": "РУБЛИ"}),
        one("Валюта", "РУБЛИ", "not a 3-letter currency code"),
    ),
    Kind(
        "infinite amount",
        deal("119", "Бесконечность", {"Бюджет": "1e400"}),
        one("Бюджет", "1e400", ""),
    ),
    Kind(
        "a bare year for a date",
        deal("120", "Только год", {"Дата создания": "2026"}),
        one("Дата создания", "2026", ""),
    ),
    Kind(
        "NUL character",
        deal("121", "Кухня\x00"),
        one(ANY, ANY, ""),
    ),
    Kind(
        "lost without the required reason",
        deal("122", "Отказ без причины", {"Этап сделки": LOST, "Дата закрытия": "05.03.2026"}),
        one("Причина отказа", "", "reason"),
    ),
    Kind(
        "a UTF-8 row in a Windows-1251 file",
        csv_line(deal("123", "Кодировка")).encode("utf-8"),
        one(None, ANY, "encoding"),
        encoding="cp1251",
    ),
    Kind(
        "unterminated quote at the end",
        '124;"Незакрытая кавычка;Продажи;Переговоры;150000;RUB;Анна Петрова;01.03.2026;;;Сайт\r\n'.encode(),
        one(None, ANY, "2 fields where the header has 11"),
        last=True,
    ),
]


def reference(t: str) -> datetime:
    return datetime.fromisoformat(t).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Unusual:
    """A valid row written unusually, and what must land (attributes of the deal, names for stage and reason)."""

    name: str
    row: list[str]
    lands: dict[str, Any] = field(default_factory=dict)


UNUSUAL = [
    Unusual("amount in roubles", deal("201", "Рубли", {"Бюджет": "1 234,5 руб."}), {"amount": Decimal("1234.5")}),
    Unusual(
        "NBSP thousands",
        deal("202", "Неразрывные пробелы", {"Бюджет": "1\u00a0234\u00a0567,89"}),
        {"amount": Decimal("1234567.89")},
    ),
    Unusual("narrow NBSP and ₽", deal("203", "Узкий пробел", {"Бюджет": "2\u202f500 ₽"}), {"amount": Decimal("2500")}),
    Unusual(
        "dots for thousands",
        deal("204", "Точки", {"Бюджет": "1.234.567,50"}),
        {"amount": Decimal("1234567.5")},
    ),
    Unusual(
        "Excel serial dates",
        deal("205", "Даты Excel", {"Этап сделки": WON, "Дата создания": "46023", "Дата закрытия": "46030,5"}),
        {"created_at": reference("2026-01-01"), "stage_since": reference("2026-01-08 12:00"), "stage": WON},
    ),
    Unusual(
        "ISO time with a zone",
        deal("206", "Часовой пояс", {"Дата создания": "2026-03-01T10:00:00+03:00"}),
        {"created_at": reference("2026-03-01 07:00")},
    ),
    Unusual(
        "single-digit day and hour",
        deal("207", "Короткая дата", {"Дата создания": "1.3.2026 9:05"}),
        {"created_at": reference("2026-03-01 09:05")},
    ),
    Unusual("lower-case currency", deal("208", "Доллары", {"Валюта": "usd"}), {"currency": "USD"}),
    Unusual("quoted delimiter and quotes", deal("209", 'Шкаф "Люкс"; угловой'), {"title": 'Шкаф "Люкс"; угловой'}),
    Unusual("trailing empty field", [*deal("210", "Лишний разделитель в конце"), ""], {}),
    Unusual("padded owner", deal("211", "Пробелы", {"Ответственный": "  Иван Смирнов  "}), {"owner": "Иван Смирнов"}),
    Unusual(
        "lost with a reason",
        deal("212", "Дорого", {"Этап сделки": LOST, "Дата закрытия": "05.03.2026", "Причина отказа": "дорого"}),
        {"stage": LOST, "reason": "Дорого", "stage_since": reference("2026-03-05")},
    ),
    Unusual(
        "names in another letter case",
        deal("213", "Регистр", {"Воронка": "продажи", "Этап сделки": "ПЕРЕГОВОРЫ"}),
        {"stage": "Переговоры"},
    ),
]
GOOD = [deal("1", "Кухня Ивановым"), deal("2", "Шкаф-купе")]


# -- files, workspaces and the CLI ------------------------------------------------------------------------------


def write_file(
    path: Path, rows: list[list[str] | bytes], encoding: str = "utf-8-sig", header: list[str] = HEADER
) -> Path:
    enc = "utf-8" if encoding == "utf-8-sig" else encoding
    lines = [b"\xef\xbb\xbf" if encoding == "utf-8-sig" else b"", csv_line(header).encode(enc)]
    lines += [r if isinstance(r, bytes) else csv_line(r).encode(enc) for r in rows]
    path.write_bytes(b"".join(lines))
    return path


def workspace(template: Path, directory: Path) -> tuple[str, Path]:
    path = directory / f"ws-{uuid.uuid4().hex[:8]}.db"
    shutil.copyfile(template, path)
    url = f"sqlite:///{path}"
    ws = Workspace.connect(url)
    try:
        ws.create_pipeline(
            PIPELINE, stages=["Первичный контакт", "Переговоры"], won=WON, lost=[LOST], reasons=["Дорого"]
        )
    finally:
        ws.close()
    return url, path


def checkpointed_bytes(path: Path) -> bytes:
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    finally:
        con.close()
    return path.read_bytes()


def cli(db: str, *args: str | Path) -> Result:
    return runner.invoke(app, ["--db", db, *map(str, args)])


def explain(result: Result) -> str:
    exc = result.exception
    tb = "" if exc is None or isinstance(exc, SystemExit) else "".join(traceback.format_exception(exc))
    return result.output + tb


def imported(db: str, path: Path, *flags: str) -> str:
    result = cli(db, "import", "deals", path, *flags)
    assert result.exit_code == 0, explain(result)
    return result.stdout


def refused(db: str, path: Path) -> str:
    result = cli(db, "import", "deals", path)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), explain(result)
    assert result.stderr.startswith("Error: "), result.output
    assert "nothing was imported" in result.stderr
    return result.stderr


def messages_by_row(text: str, file: str) -> dict[int, list[str]]:
    """The `  - file, row N…` lines of a refusal or a --skip-bad-rows summary, by row number."""
    out: dict[int, list[str]] = defaultdict(list)
    for line in text.splitlines():
        m = re.match(rf"  - {re.escape(file)}, row (\d+)[,:]", line)
        if m:
            out[int(m.group(1))].append(line[4:])
        else:
            assert not line.startswith("  - "), f"a problem without a row: {line}"
    return dict(out)


def matches(message: str, expect: Expect) -> bool:
    column_ok = expect.column == ANY or (
        f"column {expect.column!r}" in message if expect.column else ", column " not in message.split(":")[0]
    )
    value_ok = expect.value in (ANY, None) or f"value {expect.value!r}" in message
    return column_ok and value_ok and expect.reason in message


def assert_messages(messages: list[str], expects: tuple[Expect, ...]) -> None:
    assert len(messages) == len(expects), messages
    for expect in expects:
        assert any(matches(m, expect) for m in messages), (expect, messages)


def layout(kinds: list[Kind], unusual: list[Unusual]) -> tuple[list[list[str] | bytes], dict[int, Kind]]:
    """GOOD first (so the duplicate's first row is row 2), then the unusual rows, then the broken ones."""
    ordered = sorted(kinds, key=lambda k: k.last)
    rows: list[list[str] | bytes] = [*GOOD, *(u.row for u in unusual), *(k.row for k in ordered)]
    first = 2 + len(GOOD) + len(unusual)
    return rows, {first + i: k for i, k in enumerate(ordered)}


def rejects(path: Path) -> dict[int, tuple[str, list[str]]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        header, *rows = list(csv.reader(fh, delimiter=";"))
    assert header == ["row", "problem", *HEADER]
    return {int(r[0]): (r[1], r[2:]) for r in rows}


def assert_rejected(found: tuple[str, list[str]], kind: Kind) -> None:
    problem, cells = found
    for expect in kind.expect:
        assert expect.reason in problem, (problem, expect)
        if expect.column not in (None, ANY):
            assert problem.count(f"{expect.column}: ") >= 1, (problem, expect)
    if kind.cells is not None:
        assert cells == kind.cells


def landed(db: str) -> dict[str, dict[str, Any]]:
    """The deals from files by external id, with the names of their stage and of their last move's loss reason."""
    ws = Workspace.connect(db)
    try:
        with ws.engine.connect() as conn:
            ids = [r[0] for r in conn.exec_driver_sql("SELECT external_id FROM deals WHERE external_source = 'file'")]
        out = {}
        for ext in ids:
            d = ws.deal_by_external_id(ext, source="file")
            _, stage = ws.stage_of(d.stage_id)
            out[ext] = {**asdict(d), "stage": stage.name, "reason": ws.history(d.id)[-1].reason}
        return out
    finally:
        ws.close()


def assert_lands(deals: dict[str, dict[str, Any]], unusual: list[Unusual]) -> None:
    for u in unusual:
        got = deals[u.row[0]]
        assert {k: got[k] for k in u.lands} == u.lands, u.name


def xfail_if(bug: str | None) -> list[pytest.MarkDecorator]:
    return [pytest.mark.xfail(strict=True, reason=bug)] if bug else []


def by_kind(bug: str) -> list[Any]:
    return [pytest.param(k, id=k.name, marks=xfail_if(getattr(k, bug))) for k in KINDS]


# -- the whole file ---------------------------------------------------------------------------------------------


def test_every_broken_row_gets_its_own_message_and_nothing_lands(sqlite_template: Path, tmp_path: Path) -> None:
    kinds = [k for k in KINDS if k.refuse_bug is None and k.encoding == "utf-8-sig"]
    assert len(kinds) >= 17
    rows, broken = layout(kinds, UNUSUAL)
    db, path = workspace(sqlite_template, tmp_path)
    before = checkpointed_bytes(path)

    stderr = refused(db, write_file(tmp_path / "broken.csv", rows))
    assert f"Error: {sum(len(k.expect) for k in kinds)} problem(s); nothing was imported." in stderr
    found = messages_by_row(stderr, "broken.csv")
    assert set(found) == set(broken), "messages for rows that are fine, or broken rows without a message"
    for row, kind in broken.items():
        assert_messages(found[row], kind.expect)
    assert checkpointed_bytes(path) == before


def test_skip_bad_rows_lands_the_rest_and_rejects_exactly_the_bad_rows(sqlite_template: Path, tmp_path: Path) -> None:
    kinds = [k for k in KINDS if k.refuse_bug is None and k.skip_bug is None and k.encoding == "utf-8-sig"]
    rows, broken = layout(kinds, UNUSUAL)
    db, _ = workspace(sqlite_template, tmp_path)
    path = write_file(tmp_path / "broken.csv", rows)

    out = imported(db, path, "--skip-bad-rows")
    good = len(GOOD) + len(UNUSUAL)
    assert f"read {len(rows)}, inserted {good}, updated 0, unchanged 0, rejected {len(broken)}" in out
    assert f"{sum(len(k.expect) for k in kinds)} problem(s); the bad rows are in" in out
    assert set(messages_by_row(out, "broken.csv")) <= set(broken)  # the first 20 are shown
    table = rejects(tmp_path / "broken.rejects.csv")
    assert set(table) == set(broken)
    for row, kind in broken.items():
        assert_rejected(table[row], kind)

    deals = landed(db)
    assert set(deals) == {r[0] for r in GOOD} | {u.row[0] for u in UNUSUAL}
    assert deals["1"]["title"] == "Кухня Ивановым"  # the first of the two rows with id 1
    assert_lands(deals, UNUSUAL)


def test_valid_but_unusual_rows_land_as_parsed(sqlite_template: Path, tmp_path: Path) -> None:
    db, _ = workspace(sqlite_template, tmp_path)
    out = imported(db, write_file(tmp_path / "unusual.csv", [*GOOD, *(u.row for u in UNUSUAL)]))
    n = len(GOOD) + len(UNUSUAL)
    assert f"read {n}, inserted {n}, updated 0, unchanged 0, rejected 0" in out
    assert_lands(landed(db), UNUSUAL)
    assert "Created: loss reason" not in out  # 'дорого' is the catalogue's 'Дорого'


# -- each kind alone ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", by_kind("refuse_bug"))
def test_a_broken_row_alone_is_refused_with_its_message(sqlite_template: Path, tmp_path: Path, kind: Kind) -> None:
    db, path = workspace(sqlite_template, tmp_path)
    before = checkpointed_bytes(path)
    stderr = refused(db, write_file(tmp_path / "one.csv", [*GOOD, kind.row], kind.encoding))
    found = messages_by_row(stderr, "one.csv")
    assert list(found) == [4]
    assert_messages(found[4], kind.expect)
    assert checkpointed_bytes(path) == before


@pytest.mark.parametrize("kind", by_kind("skip_bug"))
def test_a_broken_row_alone_is_skipped_into_the_reject_file(sqlite_template: Path, tmp_path: Path, kind: Kind) -> None:
    db, _ = workspace(sqlite_template, tmp_path)
    out = imported(db, write_file(tmp_path / "one.csv", [*GOOD, kind.row], kind.encoding), "--skip-bad-rows")
    assert "read 3, inserted 2, updated 0, unchanged 0, rejected 1" in out
    table = rejects(tmp_path / "one.rejects.csv")
    assert list(table) == [4]
    assert_rejected(table[4], kind)
    assert set(landed(db)) == {"1", "2"}
    assert cli(db, "export", "deals", "-o", tmp_path / "after.csv").exit_code == 0


# -- problems of the whole file's shape ---------------------------------------------------------------------------


def test_a_windows_1251_row_in_a_utf8_file_without_bom_is_one_problem(sqlite_template: Path, tmp_path: Path) -> None:
    db, _ = workspace(sqlite_template, tmp_path)
    bad = csv_line(deal("116", "Кодировка")).encode("cp1251")
    stderr = refused(db, write_file(tmp_path / "nobom.csv", [*GOOD, bad], "utf-8"))
    found = messages_by_row(stderr, "nobom.csv")
    assert list(found) == [4]
    assert_messages(found[4], one(None, ANY, "encoding"))


@pytest.mark.parametrize("empty", [b"\r\n", b";;;;;;;;;;\r\n"], ids=["blank line", "only delimiters"])
def test_empty_lines_are_skipped_like_empty_spreadsheet_rows(
    sqlite_template: Path, tmp_path: Path, empty: bytes
) -> None:
    db, _ = workspace(sqlite_template, tmp_path)
    path = write_file(tmp_path / "gaps.csv", [GOOD[0], empty, GOOD[1], empty])
    out = imported(db, path)
    assert "inserted 2, updated 0, unchanged 0, rejected 0" in out


def test_a_problem_in_a_multi_line_record_names_the_row_where_it_starts(sqlite_template: Path, tmp_path: Path) -> None:
    db, _ = workspace(sqlite_template, tmp_path)
    bad = deal("150", "Кухня\nвторой этаж", {"Бюджет": "abc"})
    stderr = refused(db, write_file(tmp_path / "multiline.csv", [bad, *GOOD]))
    assert list(messages_by_row(stderr, "multiline.csv")) == [2]


def test_a_very_long_value_is_no_crash(sqlite_template: Path, tmp_path: Path) -> None:
    db, _ = workspace(sqlite_template, tmp_path)
    note = "Клиент написал: " + "очень длинное письмо. " * 8000
    rows = [[*deal("160", "Письмо"), note], [*GOOD[0], ""], [*GOOD[1], ""]]
    out = imported(db, write_file(tmp_path / "long.csv", rows, header=[*HEADER, "Примечание"]))
    assert "inserted 3" in out
    assert landed(db)["160"]["custom"] == {"Примечание": note.strip()}
