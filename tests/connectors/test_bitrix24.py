"""Bitrix24: the deals export (CSV cp1251/UTF-8, HTML .xls) and the REST sync against a fake portal on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from tests.fakes.bitrix24_server import (
    DELETED_DEAL,
    MOVED_DEAL,
    SECRET,
    FakeBitrix24,
    Scenario,
    default_scenario,
    parse_php,
)
from voronka.cli._common import State, set_state
from voronka.cli.import_bitrix24 import register
from voronka.connectors.bitrix24 import (
    Bitrix24AuthError,
    Bitrix24Client,
    Bitrix24ConnectionError,
    Bitrix24Error,
    export_pipeline_specs,
    read_bitrix24_export,
    run_bitrix24_sync,
    sync_bitrix24,
)
from voronka.connectors.bitrix24_client import TokenBucket, php_query
from voronka.domain.pipeline import StageKind
from voronka.errors import InputError
from voronka.io.apply import ImportSummary, apply_batch
from voronka.io.problems import ImportRefusedError
from voronka.service.workspace import Workspace
from voronka.settings import Settings
from voronka.store.schema import deals, pipelines, stage_moves, stages

HEADER = [
    "ID",
    "Название сделки",
    "Стадия сделки",
    "Направление",
    "Сумма",
    "Валюта",
    "Ответственный",
    "Дата создания",
    "Предполагаемая дата закрытия",
    "Источник",
    "Компания",
]
ROWS = [
    [
        "101",
        "Кухня для Иванова",
        "Новая",
        "",
        "150 000,00",
        "RUB",
        "Иван Петров",
        "01.03.2026 10:00:00",
        "31.03.2026",
        "Звонок",
        "ООО Ромашка",
    ],
    [
        "102",
        "Шкаф",
        "Сделка успешна",
        "",
        "80000.50",
        "Российский рубль",
        "Анна Смирнова",
        "02.03.2026 11:30:00",
        "05.03.2026 18:00:00",
        "Веб-сайт",
        "",
    ],
    [
        "103",
        "Диван",
        "Анализ причины провала",
        "Повторные продажи",
        "",
        "",
        "",
        "03.03.2026 09:00:00",
        "",
        "",
        "",
    ],
    [
        "104",
        "Стол",
        "Подготовка документов",
        "",
        "1 200",
        "USD",
        "Иван Петров",
        "04.03.2026 12:00:00",
        "",
        "",
        "",
    ],
]


# -- the export ---------------------------------------------------------------------------------------------


def write_csv(path: Path, rows: list[list[str]], *, encoding: str, delimiter: str = ";") -> Path:
    lines = [delimiter.join(f'"{c}"' for c in row) for row in [HEADER, *rows]]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def write_html_xls(path: Path, rows: list[list[str]], *, charset: str = "utf-8") -> Path:
    cells = "".join(f"<th>{h}</th>" for h in HEADER)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>\n" for row in rows)
    page = (
        f'<html><head><meta http-equiv="Content-type" content="text/html;charset={charset}" /></head><body>'
        f'<table border="1"><thead><tr>{cells}</tr></thead><tbody>\n{body}</tbody></table></body></html>'
    )
    path.write_bytes(page.encode("cp1251" if charset == "windows-1251" else "utf-8"))
    return path


def check_export_deals(batch_deals: list) -> None:
    by_id = {d.external_id: d for d in batch_deals}
    assert set(by_id) == {"101", "102", "103", "104"}
    first = by_id["101"]
    assert (first.title, first.pipeline, first.stage) == ("Кухня для Иванова", "Общая", "Новая")
    assert first.amount == Decimal("150000.00") and first.currency == "RUB" and first.owner == "Иван Петров"
    assert first.created_at == datetime(2026, 3, 1, 10, 0, tzinfo=UTC) and first.source == "Звонок"
    assert by_id["102"].currency == "RUB" and by_id["102"].amount == Decimal("80000.50")
    assert by_id["102"].closed_at == datetime(2026, 3, 5, 18, 0, tzinfo=UTC)
    assert by_id["103"].pipeline == "Повторные продажи" and by_id["103"].amount is None
    assert by_id["104"].currency == "USD" and by_id["104"].amount == Decimal("1200")


@pytest.mark.parametrize(("encoding", "delimiter"), [("cp1251", ";"), ("utf-8-sig", ";"), ("utf-8", ",")])
def test_export_csv_in_cp1251_and_utf8(tmp_path: Path, encoding: str, delimiter: str) -> None:
    path = write_csv(tmp_path / "deals.csv", ROWS, encoding=encoding, delimiter=delimiter)
    batch = read_bitrix24_export(path)
    assert batch.source == "bitrix24" and not batch.history and not batch.problems and batch.read == 4
    check_export_deals(batch.deals)


@pytest.mark.parametrize("charset", ["utf-8", "windows-1251"])
def test_export_html_xls_of_older_versions(tmp_path: Path, charset: str) -> None:
    batch = read_bitrix24_export(write_html_xls(tmp_path / "deals.xls", ROWS, charset=charset))
    assert not batch.problems
    check_export_deals(batch.deals)


def test_export_lands_once_with_bitrix24_stage_kinds(sqlite_ws: Workspace, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "deals.csv", ROWS, encoding="cp1251")
    batch = read_bitrix24_export(path)
    batch.pipelines = export_pipeline_specs(batch, sqlite_ws.pipelines())
    first = apply_batch(sqlite_ws, batch, create_missing=True)
    assert (first.inserted, first.updated) == (4, 0)
    general = sqlite_ws.pipeline("Общая")
    assert [s.name for s in general.open_stages] == ["Новая", "Подготовка документов"]
    assert general.won_stage.name == "Сделка успешна"
    assert sqlite_ws.pipeline("Повторные продажи").stage("Анализ причины провала").kind is StageKind.LOST
    again = apply_batch(sqlite_ws, read_bitrix24_export(path), create_missing=True)
    assert (again.inserted, again.updated, again.unchanged, again.moves_added) == (0, 0, 4, 0)
    later = [*ROWS[:3], ["104", "Стол", "Анализ причины провала", "", "1 200", "USD", "", "04.03.2026", "", "", ""]]
    newer = read_bitrix24_export(write_csv(tmp_path / "later.csv", later, encoding="cp1251"))
    newer.pipelines = export_pipeline_specs(newer, sqlite_ws.pipelines())
    assert [(s.name, s.open, s.won, s.lost) for s in newer.pipelines] == [
        ("Общая", [], "Сделка успешна", ["Анализ причины провала"])
    ]
    moved = apply_batch(sqlite_ws, newer, create_missing=True, now=datetime(2026, 3, 10, tzinfo=UTC))
    assert (moved.updated, moved.moves_added) == (1, 1)
    assert sqlite_ws.pipeline("Общая").stage("Анализ причины провала").kind is StageKind.LOST


def test_export_problems_are_collected_and_nothing_lands(sqlite_ws: Workspace, tmp_path: Path) -> None:
    rows = [
        *ROWS,
        ["105", "Кресло", "", "", "много", "RUB", "", "05.03.2026", "", "", ""],
        ["106", "Полка", "Новая", "", "10", "тугрик", "", "31.02.2026", "", "", ""],
    ]
    batch = read_bitrix24_export(write_csv(tmp_path / "deals.csv", rows, encoding="utf-8"))
    found = {(p.row, p.column) for p in batch.problems}
    assert found == {(6, "Стадия сделки"), (6, "Сумма"), (7, "Валюта"), (7, "Дата создания")}
    assert [d.external_id for d in batch.deals] == ["101", "102", "103", "104"]
    with pytest.raises(ImportRefusedError, match="4 problem"):
        apply_batch(sqlite_ws, batch, create_missing=True)
    assert sqlite_ws.pipelines() == []


def test_export_dates_in_the_portal_time_zone(tmp_path: Path) -> None:
    batch = read_bitrix24_export(write_csv(tmp_path / "d.csv", ROWS[:1], encoding="utf-8"), timezone="Europe/Moscow")
    assert batch.deals[0].created_at == datetime(2026, 3, 1, 7, 0, tzinfo=UTC)
    with pytest.raises(InputError, match="Europe/Moscow"):
        read_bitrix24_export(tmp_path / "d.csv", timezone="Moscow/Kremlin")


def test_export_default_pipeline_name_and_missing_id(tmp_path: Path) -> None:
    batch = read_bitrix24_export(write_csv(tmp_path / "d.csv", ROWS, encoding="utf-8"), pipeline="Продажи")
    assert {d.pipeline for d in batch.deals} == {"Продажи", "Повторные продажи"}
    (tmp_path / "noid.csv").write_text("Название сделки;Стадия сделки\nКухня;Новая\n", encoding="utf-8")
    with pytest.raises(InputError, match="no 'ID' column"):
        read_bitrix24_export(tmp_path / "noid.csv")


# -- the REST client ----------------------------------------------------------------------------------------


def test_php_query_round_trips_through_the_fake() -> None:
    params = {
        "filter": {">ID": 5, "@ID": [1, 2]},
        "select": ["ID", "TITLE"],
        "order": {"ID": "ASC"},
        "start": 50,
    }
    assert parse_php(php_query(params)) == {
        "filter": {">ID": "5", "@ID": ["1", "2"]},
        "select": ["ID", "TITLE"],
        "order": {"ID": "ASC"},
        "start": "50",
    }


def test_token_bucket_allows_a_burst_then_two_per_second() -> None:
    sleeps: list[float] = []
    bucket = TokenBucket(2.0, 5, clock=lambda: 0.0, sleep=sleeps.append)
    for _ in range(9):
        bucket.take()
    assert sleeps == [0.5, 0.5, 0.5, 0.5]


@pytest.mark.parametrize("url", ["https://x.bitrix24.ru/rest/abc", "example.bitrix24.ru", "ftp://x/rest/1/a/"])
def test_malformed_webhook_url_is_refused(url: str) -> None:
    with pytest.raises(InputError, match="USER_ID/CODE"):
        Bitrix24Client(url)
    with pytest.raises(InputError, match="HTTPS"):
        Bitrix24Client("http://example.bitrix24.ru/rest/1/abcdef/")


# -- the REST sync ------------------------------------------------------------------------------------------


@pytest.fixture
def portal() -> Iterator[FakeBitrix24]:
    with FakeBitrix24() as fake:
        yield fake


@pytest.fixture
def sleeps() -> list[float]:
    return []


def sync(ws: Workspace, portal: FakeBitrix24, sleeps: list[float], **kwargs: Any) -> ImportSummary:
    """Sync ``portal`` into ``ws`` with a client whose waits are only recorded in ``sleeps``."""
    with Bitrix24Client(portal.webhook, sleep=sleeps.append) as client:
        return sync_bitrix24(ws, portal.webhook, client=client, **kwargs)


def expected_history(sc: Scenario) -> dict[str, list[tuple[str, str, datetime]]]:
    pipes = {str(c["id"]): c["name"] for c in sc.categories}
    names = {s["STATUS_ID"]: s["NAME"] for rows in sc.statuses.values() for s in rows}
    out: dict[str, list[tuple[str, str, datetime]]] = {}
    for h in sc.history:
        if h["OWNER_ID"] in sc.deals:
            at = datetime.fromisoformat(h["CREATED_TIME"]).astimezone(UTC)
            out.setdefault(str(h["OWNER_ID"]), []).append((pipes[str(h["CATEGORY_ID"])], names[h["STAGE_ID"]], at))
    return out


def stored_history(ws: Workspace) -> dict[str, list[tuple[str, str, datetime]]]:
    """Each Bitrix24 deal's logged moves as (pipeline, stage, time), in log order — one query."""
    query = (
        select(deals.c.external_id, pipelines.c.name, stages.c.name, stage_moves.c.at)
        .select_from(
            stage_moves.join(deals, deals.c.id == stage_moves.c.deal_id)
            .join(stages, stages.c.id == stage_moves.c.stage_id)
            .join(pipelines, pipelines.c.id == stage_moves.c.pipeline_id)
        )
        .where(deals.c.external_source == "bitrix24")
        .order_by(stage_moves.c.id)
    )
    out: dict[str, list[tuple[str, str, datetime]]] = {}
    with ws.engine.connect() as conn:
        for ext, pipe, stage, at in conn.execute(query):
            out.setdefault(ext, []).append((pipe, stage, at))
    return out


def test_full_sync_brings_pipelines_deals_and_history(ws: Workspace, portal: FakeBitrix24, sleeps: list[float]) -> None:
    summary = sync(ws, portal, sleeps)
    assert (summary.read, summary.inserted, summary.rejected) == (120, 120, 0)
    general, repeat = ws.pipeline("Общая"), ws.pipeline("Повторные продажи")
    assert [(s.name, s.kind.value) for s in general.stages] == [
        ("Новая", "open"),
        ("Подготовка документов", "open"),
        ("В работе", "open"),
        ("Финальный счёт", "open"),
        ("Сделка успешна", "won"),
        ("Сделка провалена", "lost"),
        ("Анализ причины провала", "lost"),
    ]
    assert [s.name for s in repeat.open_stages] == ["Новая", "Коммерческое предложение"]
    assert stored_history(ws) == expected_history(portal.scenario)
    moved = ws.deal_by_external_id(str(MOVED_DEAL), source="bitrix24")
    assert (moved.pipeline_id, ws.stage_of(moved.stage_id)[1].name) == (repeat.id, "Сделка успешна")
    deal = ws.deal_by_external_id("4", source="bitrix24")
    assert (deal.amount, deal.currency, deal.owner, deal.source) == (
        Decimal("16000"),
        "RUB",
        "Анна Смирнова",
        "Веб-сайт",
    )
    assert ws.deal_by_external_id("5", source="bitrix24").owner == "Олег Сидоров"  # dismissed users keep names
    assert summary.moves_added == sum(len(v) for v in expected_history(portal.scenario).values())
    with pytest.raises(Exception, match="999"):
        ws.deal_by_external_id(str(DELETED_DEAL), source="bitrix24")


def test_sync_uses_batch_and_pages(sqlite_ws: Workspace, portal: FakeBitrix24, sleeps: list[float]) -> None:
    with Bitrix24Client(portal.webhook, sleep=sleeps.append) as client:
        batch, _ = run_bitrix24_sync(sqlite_ws, portal.webhook, client=client)
        assert client.requests == portal.requests <= 10
    starts = sorted(
        int(c.params.get("start", 0))
        for c in portal.methods("crm.deal.list")
        if "@ID" not in (c.params.get("filter") or {})
    )
    assert starts == [0, 50, 100]
    assert len(portal.methods("crm.stagehistory.list")) >= 6 and all(c.in_batch for c in portal.calls)
    assert batch.notes == {"stage-history records of deals no longer in Bitrix24 (deleted): skipped": 1}
    assert len(portal.methods("user.get")) == 2  # 55 users: two pages


def test_syncing_twice_is_syncing_once(sqlite_ws: Workspace, portal: FakeBitrix24, sleeps: list[float]) -> None:
    sync(sqlite_ws, portal, sleeps)
    before = stored_history(sqlite_ws)
    portal.calls.clear()
    again = sync(sqlite_ws, portal, sleeps)
    assert (again.inserted, again.updated, again.moves_added, again.rejected) == (0, 0, 0, 0)
    assert stored_history(sqlite_ws) == before
    (history,) = portal.methods("crm.stagehistory.list")
    assert history.params["filter"] == {">ID": str(len(portal.scenario.history))}
    (deals,) = portal.methods("crm.deal.list")
    assert ">=DATE_MODIFY" in deals.params["filter"]
    full = sync(sqlite_ws, portal, sleeps, full=True)
    assert (full.inserted, full.updated, full.moves_added, full.unchanged) == (0, 0, 0, 120)


def test_incremental_sync_reads_only_new_history(
    sqlite_ws: Workspace, portal: FakeBitrix24, sleeps: list[float]
) -> None:
    sync(sqlite_ws, portal, sleeps)
    sc = portal.scenario
    later = sc.now + timedelta(hours=2)
    sc.move(1, "PREPARATION", later)
    sc.move(1, "WON", later + timedelta(hours=1))
    sc.add_deal(121, "NEW", later + timedelta(minutes=5))
    sc.deals[2]["TITLE"] = "Переименована"
    sc.deals[2]["DATE_MODIFY"] = sc.deals[121]["DATE_MODIFY"]
    sc.now = later + timedelta(hours=2)
    portal.calls.clear()
    summary = sync(sqlite_ws, portal, sleeps)
    assert (summary.inserted, summary.updated, summary.moves_added) == (1, 2, 3)
    history_calls = portal.methods("crm.stagehistory.list")
    assert history_calls[0].params["filter"] == {">ID": str(len(sc.history) - 3)}
    assert stored_history(sqlite_ws) == expected_history(sc)
    assert sqlite_ws.deal_by_external_id("2", source="bitrix24").title == "Переименована"


def test_numbers_arrive_as_strings_and_bad_ones_are_collected(
    sqlite_ws: Workspace, portal: FakeBitrix24, sleeps: list[float]
) -> None:
    portal.scenario.deals[3]["OPPORTUNITY"] = "сто рублей"
    portal.scenario.deals[4]["DATE_CREATE"] = "вчера"
    with pytest.raises(ImportRefusedError) as refused:
        sync(sqlite_ws, portal, sleeps)
    assert {(p.row, p.column) for p in refused.value.problems} == {(3, "OPPORTUNITY"), (4, "DATE_CREATE")}
    assert sqlite_ws.pipelines() == [] and sqlite_ws.get_state(f"bitrix24:{portal.host}") is None
    summary = sync(sqlite_ws, portal, sleeps, skip_bad_rows=True)
    assert (summary.inserted, summary.rejected) == (118, 2)


def test_rate_limit_is_retried_with_exponential_back_off(
    sqlite_ws: Workspace, portal: FakeBitrix24, sleeps: list[float]
) -> None:
    portal.rate_limited = 3
    summary = sync(sqlite_ws, portal, sleeps)
    assert summary.inserted == 120
    backoff = [s for s in sleeps if s >= 1]
    assert backoff == [1.0, 2.0, 4.0]


def test_http_429_is_retried_too(sqlite_ws: Workspace, portal: FakeBitrix24, sleeps: list[float]) -> None:
    portal.rate_limited, portal.rate_limit_status = 2, 429
    assert sync(sqlite_ws, portal, sleeps).inserted == 120


def test_endless_rate_limit_ends_in_a_clear_error(
    sqlite_ws: Workspace, portal: FakeBitrix24, sleeps: list[float]
) -> None:
    portal.rate_limited = 100
    with pytest.raises(Bitrix24Error, match=r"kept refusing .*QUERY_LIMIT_EXCEEDED.*2 requests/s.*Nothing was"):
        sync(sqlite_ws, portal, sleeps)
    assert sqlite_ws.pipelines() == []


@pytest.mark.parametrize("mode", ["close", "partial"])
def test_broken_connection_midway_is_retried(
    sqlite_ws: Workspace, portal: FakeBitrix24, sleeps: list[float], mode: str
) -> None:
    portal.drop_after, portal.drops, portal.drop_mode = 3, 2, mode
    summary = sync(sqlite_ws, portal, sleeps)
    assert summary.inserted == 120
    assert stored_history(sqlite_ws) == expected_history(portal.scenario)


def test_connection_that_stays_broken_is_a_clear_error_and_writes_nothing(
    sqlite_ws: Workspace, portal: FakeBitrix24, sleeps: list[float]
) -> None:
    portal.drop_after, portal.drops = 3, -1
    with pytest.raises(Bitrix24ConnectionError) as failed:
        sync(sqlite_ws, portal, sleeps)
    message = str(failed.value)
    assert portal.host in message and "6 attempts" in message and "Nothing was written" in message
    assert sqlite_ws.pipelines() == [] and sqlite_ws.users() == []
    assert sqlite_ws.get_state(f"bitrix24:{portal.host}") is None


def test_wrong_webhook_code_is_a_clear_error(sqlite_ws: Workspace, portal: FakeBitrix24, sleeps: list[float]) -> None:
    url = portal.webhook_with("wrongcode42")
    with Bitrix24Client(url, sleep=sleeps.append) as client, pytest.raises(Bitrix24AuthError) as refused:
        sync_bitrix24(sqlite_ws, url, client=client)
    message = str(refused.value)
    assert "NO_AUTH_FOUND" in message and "Inbound webhook" in message and "/rest/1/***/" in message
    assert "wrongcode42" not in message and SECRET not in message
    assert sleeps == [] and sqlite_ws.pipelines() == []


@pytest.mark.parametrize(
    ("method", "status", "error", "expected"),
    [
        ("user.get", 403, "insufficient_scope", r"may not call user.get .*Users \(user_brief\)"),
        ("crm.deal.list", 403, "insufficient_scope", r"may not call crm.deal.list .*CRM \(crm\)"),
        ("crm.stagehistory.list", 503, "OPERATION_TIME_LIMIT", "wait 10 minutes"),
        ("crm.category.list", 403, "ACCESS_DENIED", "commercial"),
    ],
)
def test_refused_methods_are_clear_errors(
    sqlite_ws: Workspace,
    portal: FakeBitrix24,
    sleeps: list[float],
    method: str,
    status: int,
    error: str,
    expected: str,
) -> None:
    portal.refuse[method] = (status, error, "")
    with pytest.raises(Bitrix24Error, match=expected) as refused:
        sync(sqlite_ws, portal, sleeps)
    assert "Nothing was written" in str(refused.value) and sqlite_ws.pipelines() == []
    assert [s for s in sleeps if s >= 1] == []  # not retried


def test_client_for_another_webhook_is_refused(sqlite_ws: Workspace, portal: FakeBitrix24) -> None:
    with Bitrix24Client(portal.webhook) as client, pytest.raises(ValueError, match="not for"):
        sync_bitrix24(sqlite_ws, portal.webhook_with("other1"), client=client)


def test_dry_run_writes_nothing(sqlite_ws: Workspace, portal: FakeBitrix24, sleeps: list[float]) -> None:
    summary = sync(sqlite_ws, portal, sleeps, dry_run=True)
    assert summary.dry_run and summary.inserted == 120
    assert sqlite_ws.pipelines() == [] and sqlite_ws.get_state(f"bitrix24:{portal.host}") is None


def test_renamed_stage_keeps_its_name_and_history(
    sqlite_ws: Workspace, portal: FakeBitrix24, sleeps: list[float]
) -> None:
    sync(sqlite_ws, portal, sleeps)
    for s in portal.scenario.statuses["DEAL_STAGE"]:
        if s["STATUS_ID"] == "PREPARATION":
            s["NAME"] = "Документы"
    again = sync(sqlite_ws, portal, sleeps, full=True)
    assert (again.updated, again.moves_added) == (0, 0)
    assert "Документы" not in [s.name for s in sqlite_ws.pipeline("Общая").stages]


def test_existing_pipeline_keeps_its_won_stage(sqlite_ws: Workspace, portal: FakeBitrix24, sleeps: list[float]) -> None:
    sqlite_ws.create_pipeline("Общая", stages=["Новая"], won="Оплачено", lost=["Отказ"], lang="ru")
    sync(sqlite_ws, portal, sleeps)
    general = sqlite_ws.pipeline("Общая")
    assert general.won_stage.name == "Оплачено" and len(general.stages) == 8
    won = sqlite_ws.deal_by_external_id("2", source="bitrix24")  # 2 % 6 == 2: a won path
    assert sqlite_ws.stage_of(won.stage_id)[1].name == "Оплачено"


def test_deleted_stage_is_reported_or_kept(sqlite_ws: Workspace, portal: FakeBitrix24, sleeps: list[float]) -> None:
    main = portal.scenario.statuses["DEAL_STAGE"]
    portal.scenario.statuses["DEAL_STAGE"] = [s for s in main if s["STATUS_ID"] != "APOLOGY"]
    with pytest.raises(ImportRefusedError, match="unknown stage"):
        sync(sqlite_ws, portal, sleeps)
    sync(sqlite_ws, portal, sleeps, create_missing=True)
    assert sqlite_ws.pipeline("Общая").stage("APOLOGY").kind is StageKind.LOST


# -- the command --------------------------------------------------------------------------------------------


def cli(db: str) -> tuple[typer.Typer, CliRunner]:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        set_state(State(Settings.from_env(db)))

    group = typer.Typer()
    register(group)
    app.add_typer(group, name="import")
    return app, CliRunner()


def test_command_imports_an_export_and_syncs_a_portal(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, runner = cli(sqlite_url)
    path = write_csv(tmp_path / "deals.csv", ROWS, encoding="cp1251")
    done = runner.invoke(app, ["import", "bitrix24", str(path), "--create-missing"])
    assert done.exit_code == 0, done.output
    assert "inserted 4" in done.output
    with FakeBitrix24(default_scenario(deals=12, users=3)) as fake:
        monkeypatch.setenv("BITRIX24_WEBHOOK", fake.webhook)
        synced = runner.invoke(app, ["import", "bitrix24"])
        assert synced.exit_code == 0, synced.output
        assert "inserted 12" in synced.output and "Bitrix24 127.0.0.1" in synced.output
        refused = runner.invoke(app, ["import", "bitrix24", "--webhook", fake.webhook_with("nope00")])
        assert refused.exit_code == 1 and "refused the webhook" in refused.output
    both = runner.invoke(app, ["import", "bitrix24", str(path), "--webhook", "https://x.bitrix24.ru/rest/1/a/"])
    assert both.exit_code == 1 and "either" in both.output
    monkeypatch.delenv("BITRIX24_WEBHOOK")
    nothing = runner.invoke(app, ["import", "bitrix24"])
    assert nothing.exit_code == 1 and "BITRIX24_WEBHOOK" in nothing.output
