"""The workspace store on every backend: the move log, its rules, optimistic concurrency, and round-trips.

Each test gets a fresh workspace on SQLite (a temp file) and on PostgreSQL (a fresh schema) when it answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import StatementError

from tests.conftest import BACKENDS, pg_schema_url, pg_unavailable
from tests.helpers import dump
from tests.scenarios import T
from voronka.domain.pipeline import StageKind
from voronka.errors import InputError, MoveError, NotFoundError, StaleDealError
from voronka.service.workspace import Workspace
from voronka.store import migrate

REASONS = ["Дорого", "No budget"]


@pytest.fixture
def sales(ws: Workspace) -> Workspace:
    ws.create_pipeline("Sales", stages=["Request", "Call", "Estimate", "Contract"], reasons=REASONS)
    ws.create_pipeline("Repeat", stages=["Offer", "Invoice"], reasons=["Дорого"])
    return ws


# -- schema ---------------------------------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def virgin_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it at all: not even Voronka's schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'new.db'}"
        return
    if pg_unavailable() is not None:
        pytest.skip(pg_unavailable())
    with pg_schema_url() as url:
        yield url


def test_the_migration_creates_the_schema_and_is_idempotent(virgin_url: str) -> None:
    ws = Workspace.connect(virgin_url)
    try:
        assert migrate.current_revision(ws.engine) == migrate.head_revision()
        tables = set(inspect(ws.engine).get_table_names())
        assert {"pipelines", "stages", "loss_reasons", "users", "deals", "stage_moves", "activities"} <= tables
        assert "alembic_version" in tables
        if ws.engine.dialect.name == "postgresql":
            # The migration ran in the test's own schema, where search_path points.
            with ws.engine.connect() as conn:
                schema = conn.scalar(text("SELECT current_schema()"))
                here = set(
                    conn.scalars(
                        text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                        {"s": schema},
                    )
                )
            assert schema.startswith("t_")
            assert tables <= here
        ws.create_pipeline("Sales", stages=["Request"])
        ws.add_deal("Sales", "Kitchen", amount="10", at=T("2026-01-01"))
        assert ws.funnel("Sales").overall.entered == 1
    finally:
        ws.close()
    again = Workspace.connect(virgin_url)  # a second upgrade is a no-op and keeps the data
    try:
        assert migrate.current_revision(again.engine) == migrate.head_revision()
        assert again.deal(1).amount == Decimal("10")
    finally:
        again.close()


def test_the_head_revision_read_from_the_files_is_alembics() -> None:
    from alembic.script import ScriptDirectory

    assert migrate.head_revision() == ScriptDirectory.from_config(migrate._config()).get_current_head()


def test_reopening_a_workspace_keeps_its_data(sales: Workspace, backend_url: str) -> None:
    d = sales.add_deal("Sales", "Kitchen", at=T("2026-01-01"))
    again = Workspace.connect(backend_url)
    try:
        assert again.deal(d.id).title == "Kitchen"
        assert [p.name for p in again.pipelines()] == ["Sales", "Repeat"]
    finally:
        again.close()


# -- pipelines ------------------------------------------------------------------------------------------------


def test_pipeline_layout_positions_and_reasons(sales: Workspace) -> None:
    p = sales.pipeline("sales")
    assert [(s.name, s.position, s.kind) for s in p.stages] == [
        ("Request", 0, StageKind.OPEN),
        ("Call", 1, StageKind.OPEN),
        ("Estimate", 2, StageKind.OPEN),
        ("Contract", 3, StageKind.OPEN),
        ("Won", 4, StageKind.WON),
        ("Lost", 5, StageKind.LOST),
    ]
    assert p.reasons == tuple(REASONS)
    assert p.reason_required
    assert sales.pipeline(p.id) == sales.pipeline(str(p.id)) == p


def test_cyrillic_pipeline_names_match_in_any_case(ws: Workspace) -> None:
    p = ws.create_pipeline("Продажи", template="made-to-order", lang="ru")
    assert ws.pipeline("продажи").id == p.id
    assert ws.pipeline("ПРОДАЖИ").id == p.id
    assert [s.name for s in p.open_stages][0] == "Заявка"
    assert p.won_stage.name == "Продажа"
    assert [s.name for s in p.lost_stages] == ["Закрыто и не реализовано"]
    with pytest.raises(InputError, match="already exists"):
        ws.create_pipeline("ПРОДАЖИ", stages=["A"])


def test_unknown_pipeline_lists_the_known_ones(sales: Workspace) -> None:
    with pytest.raises(NotFoundError, match=r"Unknown pipeline 'Nope'. Use one of: 'Sales', 'Repeat'"):
        sales.add_deal("Nope", "Kitchen")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stages": ["A", "B"], "sla_days": [1.0]}, "2 open stages"),
        ({"stages": ["A"], "process": "sales"}, "Unknown process 'sales'"),
        ({"stages": ["A"], "template": "classic5"}, "not both"),
        ({}, "not both"),
        ({"template": "kanban"}, "Unknown template 'kanban'"),
        ({"stages": ["A", "a"]}, "used twice"),
    ],
)
def test_bad_pipelines_are_refused_and_nothing_is_written(ws: Workspace, kwargs: dict, message: str) -> None:
    before = dump(ws.engine)
    with pytest.raises(InputError, match=message):
        ws.create_pipeline("P", **kwargs)
    assert dump(ws.engine) == before


def test_sla_set_and_cleared(sales: Workspace) -> None:
    assert sales.set_sla("Sales", "Call", 2.5).sla_days == 2.5
    assert sales.pipeline("Sales").stage("Call").sla_days == 2.5
    assert sales.set_sla("Sales", "Call", None).sla_days is None
    with pytest.raises(InputError, match="positive"):
        sales.set_sla("Sales", "Call", 0)


# -- the move log ---------------------------------------------------------------------------------------------


def test_a_new_deal_starts_its_log_with_the_creation(sales: Workspace) -> None:
    d = sales.add_deal("Sales", "Kitchen", owner="Anna", at=T("2026-01-01T09:00"))
    p = sales.pipeline("Sales")
    assert (d.pipeline_id, d.stage_id, d.version) == (p.id, p.open_stages[0].id, 1)
    assert d.created_at == d.stage_since == T("2026-01-01T09:00")
    [first] = sales.history(d.id)
    assert (first.from_stage_id, first.stage_id, first.at) == (None, d.stage_id, d.created_at)
    assert d.owner == "Anna" and "Anna" in sales.users()


def test_a_deal_may_start_in_a_later_stage(sales: Workspace) -> None:
    d = sales.add_deal("Sales", "Referral", stage="Estimate", at=T("2026-01-01"))
    assert d.stage_id == sales.pipeline("Sales").stage("Estimate").id


def test_the_log_is_append_only_and_the_cached_stage_is_its_last_move(sales: Workspace) -> None:
    d = sales.add_deal("Sales", "Kitchen", at=T("2026-01-01"))
    path = [
        ("Estimate", "2026-01-02"),
        ("Call", "2026-01-03"),
        ("Lost", "2026-01-04"),
        ("Contract", "2026-01-05"),
    ]
    seen = sales.history(d.id)
    for stage, at in path:
        reason = "Дорого" if stage == "Lost" else None
        moved = sales.move_deal(d.id, stage, at=T(at), reason=reason, by="Boris", comment=f"to {stage}")
        now = sales.history(d.id)
        assert moved == now[-1]  # what a move returns is what the log keeps
        assert now[: len(seen)] == seen  # earlier entries are never rewritten
        assert len(now) == len(seen) + 1
        seen = now
        deal = sales.deal(d.id)
        assert deal.stage_id == now[-1].stage_id
        assert deal.stage_since == now[-1].at == T(at)
        assert deal.version == len(now)
    stages = [sales.stage_of(m.stage_id)[1].name for m in seen]
    assert stages == ["Request", "Estimate", "Call", "Lost", "Contract"]
    assert [m.from_stage_id for m in seen[1:]] == [m.stage_id for m in seen[:-1]]
    assert seen[3].reason == "Дорого" and seen[3].author == "Boris" and seen[3].comment == "to Lost"
    assert [m.reason for m in seen if m is not seen[3]] == [None] * 4


def test_a_move_before_the_last_move_is_refused(sales: Workspace) -> None:
    d = sales.add_deal("Sales", "Kitchen", at=T("2026-01-05T12:00"))
    before = dump(sales.engine)
    with pytest.raises(MoveError, match=r"Time 2026-01-05T11:59:59Z is before the deal's last move at 2026-01-05T12"):
        sales.move_deal(d.id, "Call", at=T("2026-01-05T11:59:59"))
    assert dump(sales.engine) == before
    # The same instant is not before: ties in time are allowed, and kept in log order.
    sales.move_deal(d.id, "Call", at=T("2026-01-05T12:00"))
    sales.move_deal(d.id, "Estimate", at=T("2026-01-05T12:00"))
    assert sales.deal(d.id).stage_id == sales.pipeline("Sales").stage("Estimate").id


def test_a_move_to_the_stage_the_deal_is_in_is_refused(sales: Workspace) -> None:
    d = sales.add_deal("Sales", "Kitchen", at=T("2026-01-01"))
    with pytest.raises(MoveError, match="already in stage 'Request'"):
        sales.move_deal(d.id, "request", at=T("2026-01-02"))


def test_unknown_stage_and_unknown_deal(sales: Workspace) -> None:
    d = sales.add_deal("Sales", "Kitchen", at=T("2026-01-01"))
    before = dump(sales.engine)
    with pytest.raises(NotFoundError, match="Stage 'Negotiation' is not in pipeline 'Sales'"):
        sales.move_deal(d.id, "Negotiation", at=T("2026-01-02"))
    with pytest.raises(NotFoundError, match="No deal with id 999"):
        sales.move_deal(999, "Call", at=T("2026-01-02"))
    assert dump(sales.engine) == before


def test_lost_needs_a_reason_when_the_pipeline_requires_one(sales: Workspace) -> None:
    d = sales.add_deal("Sales", "Kitchen", at=T("2026-01-01"))
    before = dump(sales.engine)
    with pytest.raises(MoveError, match=r"lost stage 'Lost' needs a loss reason.*'Дорого', 'No budget'"):
        sales.move_deal(d.id, "Lost", at=T("2026-01-02"))
    with pytest.raises(MoveError, match="needs a loss reason"):
        sales.add_deal("Sales", "Born lost", stage="Lost", at=T("2026-01-02"))
    assert dump(sales.engine) == before


def test_lost_without_a_reason_where_reasons_are_optional(ws: Workspace) -> None:
    ws.create_pipeline("Loose", stages=["A", "B"], reason_required=False)
    d = ws.add_deal("Loose", "x", at=T("2026-01-01"))
    ws.move_deal(d.id, "Lost", at=T("2026-01-02"))
    assert ws.history(d.id)[-1].reason is None


def test_loss_reasons_match_case_insensitively(sales: Workspace) -> None:
    for i, given in enumerate(["дорого", "ДОРОГО", " Дорого ", "no budget", "NO BUDGET"]):
        d = sales.add_deal("Sales", f"Kitchen {i}", at=T("2026-01-01"))
        moved = sales.move_deal(d.id, "Lost", at=T("2026-01-02"), reason=given, by=" Anna " if i % 2 else "")
        assert sales.history(d.id)[-1] == moved
        assert moved.reason == ("No budget" if "budget" in given.lower() else "Дорого")
        assert moved.author == ("Anna" if i % 2 else None)


def test_unknown_loss_reason_is_refused(sales: Workspace) -> None:
    d = sales.add_deal("Sales", "Kitchen", at=T("2026-01-01"))
    before = dump(sales.engine)
    with pytest.raises(NotFoundError, match="Loss reason 'Weather' is not in the catalogue"):
        sales.move_deal(d.id, "Lost", at=T("2026-01-02"), reason="Weather")
    assert dump(sales.engine) == before


@pytest.mark.parametrize("stage", ["Call", "Won"])
def test_a_reason_on_a_move_that_is_not_to_lost_is_refused(sales: Workspace, stage: str) -> None:
    d = sales.add_deal("Sales", "Kitchen", at=T("2026-01-01"))
    before = dump(sales.engine)
    with pytest.raises(MoveError, match=rf"loss reason \('Дорого'\) is only for moves to a lost stage.*'{stage}'"):
        sales.move_deal(d.id, stage, at=T("2026-01-02"), reason="Дорого")
    with pytest.raises(MoveError, match="only for moves to a lost stage"):
        sales.add_deal("Sales", "Kitchen 2", at=T("2026-01-02"), reason="Дорого")
    assert dump(sales.engine) == before


def test_moving_to_another_pipeline(sales: Workspace) -> None:
    d = sales.add_deal("Sales", "Kitchen", at=T("2026-01-01"))
    sales.move_deal(d.id, "Call", at=T("2026-01-02"))
    call = sales.pipeline("Sales").stage("Call")
    repeat = sales.pipeline("Repeat")
    m = sales.move_deal(d.id, "invoice", at=T("2026-01-03"), pipeline="repeat")
    assert (m.pipeline_id, m.from_stage_id, m.stage_id) == (repeat.id, call.id, repeat.stage("Invoice").id)
    deal = sales.deal(d.id)
    assert (deal.pipeline_id, deal.stage_id, deal.version) == (repeat.id, repeat.stage("Invoice").id, 3)
    # Stages are now looked up in the new pipeline.
    with pytest.raises(NotFoundError, match="not in pipeline 'Repeat'"):
        sales.move_deal(d.id, "Call", at=T("2026-01-04"))
    with pytest.raises(NotFoundError, match="not in pipeline 'Repeat'"):
        sales.move_deal(d.id, "Estimate", at=T("2026-01-04"), pipeline="Repeat")
    sales.move_deal(d.id, "Lost", at=T("2026-01-05"), reason="ДОРОГО")
    assert [m.pipeline_id for m in sales.history(d.id)] == [sales.pipeline("Sales").id] * 2 + [repeat.id] * 2


def test_a_move_by_a_signed_in_author_equals_its_log_entry(sales: Workspace) -> None:
    """With the author's id given (the web app's moves; on PostgreSQL the one-statement write), the same result."""
    anna = sales.add_deal("Sales", "Kitchen", owner="Anna", at=T("2026-01-01"))
    author = sales.deal(anna.id).owner
    with sales.engine.connect() as conn:
        anna_id = conn.scalar(text("SELECT id FROM users WHERE name = 'Anna'"))
    moved = sales.move_deal(anna.id, "Call", at=T("2026-01-02"), by=author, by_id=anna_id, expected_version=1)
    assert sales.history(anna.id)[-1] == moved and moved.author == "Anna"
    lost = sales.move_deal(anna.id, "Lost", at=T("2026-01-03"), by="Anna", by_id=anna_id, reason="дорого")
    assert sales.history(anna.id)[-1] == lost and lost.reason == "Дорого"
    before = dump(sales.engine)
    with pytest.raises(StaleDealError):
        sales.move_deal(anna.id, "Call", at=T("2026-01-04"), by="Anna", by_id=anna_id, expected_version=2)
    assert dump(sales.engine) == before
    assert sales.deal(anna.id).version == 3


def test_the_one_statement_write_inserts_nothing_when_the_deal_moved_on(sales: Workspace) -> None:
    """PostgreSQL's move write (update and insert in one statement): at a version the deal no longer has, the
    update finds no row, so no log row is inserted either."""
    from voronka.store.workspace import _MOVE_AND_ADVANCE

    if sales.engine.dialect.name != "postgresql":
        pytest.skip("the one-statement write is PostgreSQL's (SQLite has no UPDATE in a WITH clause)")
    d = sales.add_deal("Sales", "Kitchen", at=T("2026-01-01"))
    call = sales.pipeline("Sales").stage("Call")
    before = dump(sales.engine)
    move = {"deal_id": d.id, "pipeline_id": d.pipeline_id, "from_stage_id": d.stage_id, "stage_id": call.id}
    move |= {"at": T("2026-01-02"), "author_id": None, "reason_id": None, "comment": None}
    advance = {"b_deal": d.id, "b_pipeline": d.pipeline_id, "b_stage": call.id, "b_at": T("2026-01-02")}
    with sales.engine.begin() as conn:
        assert conn.execute(_MOVE_AND_ADVANCE, {**move, **advance, "b_version": 7}).scalar() is None
    assert dump(sales.engine) == before
    with sales.engine.begin() as conn:
        assert conn.execute(_MOVE_AND_ADVANCE, {**move, **advance, "b_version": 1}).scalar() is not None
    assert sales.deal(d.id).stage_id == call.id and len(sales.history(d.id)) == 2


# -- optimistic concurrency -----------------------------------------------------------------------------------


def test_a_stale_expected_version_is_refused_and_nothing_is_written(sales: Workspace) -> None:
    d = sales.add_deal("Sales", "Kitchen", at=T("2026-01-01"))
    sales.move_deal(d.id, "Call", at=T("2026-01-02"), expected_version=1)
    before = dump(sales.engine)
    with pytest.raises(StaleDealError, match=r"your version 1, now 2"):
        sales.move_deal(d.id, "Estimate", at=T("2026-01-03"), expected_version=1)
    assert dump(sales.engine) == before
    sales.move_deal(d.id, "Estimate", at=T("2026-01-03"), expected_version=2)
    assert sales.deal(d.id).version == 3


def test_two_writers_one_with_a_stale_read(sales: Workspace, backend_url: str) -> None:
    d = sales.add_deal("Sales", "Kitchen", at=T("2026-01-01"))
    other = Workspace.connect(backend_url)
    try:
        seen = sales.deal(d.id)  # the first writer reads the deal
        other.move_deal(d.id, "Call", at=T("2026-01-02"), expected_version=other.deal(d.id).version)
        before = dump(sales.engine)
        with pytest.raises(StaleDealError, match="changed since you read it"):
            sales.move_deal(d.id, "Lost", at=T("2026-01-03"), reason="Дорого", expected_version=seen.version)
        with pytest.raises(StaleDealError):
            sales.update_deal(d.id, expected_version=seen.version, title="Kitchen XL")
        assert dump(sales.engine) == before
    finally:
        other.close()


def test_update_deal_is_version_checked(sales: Workspace) -> None:
    d = sales.add_deal("Sales", "Kitchen", at=T("2026-01-01"), amount="100")
    u = sales.update_deal(d.id, expected_version=1, title="Kitchen XL", owner="Vera", amount="1 500,5", segment="b2c")
    assert (u.title, u.owner, u.amount, u.segment, u.version) == (
        "Kitchen XL",
        "Vera",
        Decimal("1500.5"),
        "b2c",
        2,
    )
    assert sales.deal(d.id) == u
    before = dump(sales.engine)
    with pytest.raises(StaleDealError, match=r"your version 1, now 2"):
        sales.update_deal(d.id, expected_version=1, title="Old read")
    # An update bumps the version: a move based on the read before it is stale too.
    with pytest.raises(StaleDealError):
        sales.move_deal(d.id, "Call", at=T("2026-01-02"), expected_version=1)
    assert dump(sales.engine) == before
    with pytest.raises(InputError, match="Cannot update"):
        sales.update_deal(d.id, expected_version=2, stage_id=3)
    with pytest.raises(NotFoundError, match="No deal with id 999"):
        sales.update_deal(999, expected_version=1, title="x")


def test_update_deal_follows_the_rules_of_add_deal(sales: Workspace) -> None:
    d = sales.add_deal("Sales", "Kitchen", source="web", at=T("2026-01-01"))
    before = dump(sales.engine)
    with pytest.raises(InputError, match="Malformed currency 'RUBL'"):
        sales.update_deal(d.id, expected_version=1, currency="RUBL")
    with pytest.raises(InputError, match="non-empty title"):
        sales.update_deal(d.id, expected_version=1, title="  ")
    with pytest.raises(InputError, match="Malformed amount 'lots'"):
        sales.update_deal(d.id, expected_version=1, amount="lots")
    assert dump(sales.engine) == before
    u = sales.update_deal(d.id, expected_version=1, currency=" usd ", title=" Kitchen XL ", source="")
    assert (u.currency, u.title, u.source) == ("USD", "Kitchen XL", None)


def test_a_failed_transaction_writes_nothing(sales: Workspace) -> None:
    before = dump(sales.engine)
    with pytest.raises(MoveError), sales.transaction():
        d = sales.add_deal("Sales", "Kitchen", at=T("2026-01-01"))
        sales.move_deal(d.id, "Call", at=T("2026-01-02"))
        sales.move_deal(d.id, "Lost", at=T("2026-01-03"))  # no reason: refused, and the rest rolls back
    assert dump(sales.engine) == before


# -- external ids ---------------------------------------------------------------------------------------------


def test_an_external_id_is_unique_per_source(sales: Workspace) -> None:
    d = sales.add_deal("Sales", "Kitchen", external_id="A-17", at=T("2026-01-01"))
    before = dump(sales.engine)
    with pytest.raises(InputError, match=r"external id 'A-17' already exists"):
        sales.add_deal("Sales", "Kitchen again", external_id="A-17", at=T("2026-01-02"))
    assert dump(sales.engine) == before
    e = sales.add_deal("Sales", "From amo", external_id="A-17", external_source="amocrm", at=T("2026-01-02"))
    assert sales.deal_by_external_id("A-17").id == d.id
    assert sales.deal_by_external_id("A-17", source="amocrm").id == e.id
    assert sales.deal(e.id).external_source == "amocrm"
    with pytest.raises(NotFoundError, match="No deal with external id 'B-1'"):
        sales.deal_by_external_id("B-1")


# -- round-trips ----------------------------------------------------------------------------------------------


MONEY = [
    ("150000", Decimal("150000")),
    ("1 234,50", Decimal("1234.50")),
    ("0.01", Decimal("0.01")),
    ("0.1234", Decimal("0.1234")),
    ("99999999.99", Decimal("99999999.99")),
    (Decimal("19.9"), Decimal("19.9")),
    (0.1, Decimal("0.1")),
    ("0", Decimal("0")),
]


def test_money_round_trips_as_decimal(sales: Workspace) -> None:
    ids = [sales.add_deal("Sales", f"D{i}", amount=given, currency="usd").id for i, (given, _) in enumerate(MONEY)]
    for deal_id, (given, expected) in zip(ids, MONEY, strict=True):
        got = sales.deal(deal_id)
        assert isinstance(got.amount, Decimal), given
        assert got.amount == expected, given
        assert got.currency == "USD"


def test_no_amount_stays_none(sales: Workspace) -> None:
    assert sales.deal(sales.add_deal("Sales", "Kitchen", at=T("2026-01-01")).id).amount is None


@pytest.mark.parametrize("currency", ["RU", "RUBL", "12$"])
def test_malformed_currency_is_refused(sales: Workspace, currency: str) -> None:
    with pytest.raises(InputError, match=re.escape(f"Malformed currency '{currency}'")):
        sales.add_deal("Sales", "Kitchen", currency=currency)


def test_times_round_trip_as_aware_utc(sales: Workspace) -> None:
    msk = timezone(timedelta(hours=3))
    created = datetime(2026, 3, 1, 13, 30, 15, 123456, tzinfo=msk)
    d = sales.add_deal("Sales", "Kitchen", at=created)
    moved = datetime(2026, 3, 2, 0, 0, 0, 1, tzinfo=timezone(timedelta(hours=-5)))
    returned = sales.move_deal(d.id, "Call", at=moved)
    got = sales.deal(d.id)
    for value, want in (
        (got.created_at, created),
        (got.stage_since, moved),
        (sales.history(d.id)[-1].at, moved),
        (returned.at, moved),
    ):
        assert value == want
        assert value.utcoffset() == timedelta(0)
        assert value.tzinfo == UTC
    assert got.created_at.microsecond == 123456
    assert got.created_at.hour == 10


def test_a_naive_time_never_reaches_the_store(sales: Workspace) -> None:
    before = dump(sales.engine)
    with pytest.raises(StatementError, match="naive datetime"):
        sales.add_deal("Sales", "Kitchen", at=datetime(2026, 1, 1))
    assert dump(sales.engine) == before


def test_custom_fields_round_trip(sales: Workspace) -> None:
    d = sales.add_deal("Sales", "Kitchen", custom={"city": "Казань", "floors": 2}, at=T("2026-01-01"))
    assert sales.deal(d.id).custom == {"city": "Казань", "floors": 2}


# -- users and activities -------------------------------------------------------------------------------------


def test_users(ws: Workspace) -> None:
    ws.add_user("Anna", role="head", email="anna@example.com")
    with pytest.raises(InputError, match="already exists"):
        ws.add_user("Anna")
    with pytest.raises(InputError, match="Unknown role 'boss'"):
        ws.add_user("Boris", role="boss")
    with pytest.raises(InputError, match="non-empty name"):
        ws.add_user("  ")
    assert ws.users() == ["Anna"]


def test_activities(sales: Workspace) -> None:
    d = sales.add_deal("Sales", "Kitchen", at=T("2026-01-01"))
    a = sales.add_activity(d.id, "task", at=T("2026-01-02"), due_at=T("2026-01-05"), by="Anna", note="Call back")
    assert (a.kind.value, a.due_at, a.done, a.author, a.note) == (
        "task",
        T("2026-01-05"),
        False,
        "Anna",
        "Call back",
    )
    assert sales.complete_activity(a.id).done
    assert [x.id for x in sales.activities(d.id)] == [a.id]
    with pytest.raises(InputError, match="Unknown activity kind 'fax'"):
        sales.add_activity(d.id, "fax")
    with pytest.raises(NotFoundError, match="No activity with id 999"):
        sales.complete_activity(999)
    with pytest.raises(NotFoundError, match="No deal with id 999"):
        sales.add_activity(999, "call")


def test_open_sqlite_connections_counts_every_engine_on_the_file_until_its_connections_close(tmp_path: Path) -> None:
    """The count that decides whether a funnel read must first collect garbage (analytics/_log.py)."""
    import gc

    from voronka.store.engine import open_sqlite_connections

    url = f"sqlite:///{tmp_path / 'ws.db'}"
    ws = Workspace.connect(url)
    assert open_sqlite_connections(ws.engine) == 1  # the migration check's connection, idle in the pool
    ws.engine.dispose()
    assert open_sqlite_connections(ws.engine) == 0
    gc.disable()  # so that no automatic collection runs before the count is read
    try:
        other = Workspace.connect(url)
        other.users()
        cycle: list[object] = [other]
        cycle.append(cycle)
        del other, cycle  # dropped in a reference cycle: its connection closes only when the GC runs
        assert open_sqlite_connections(ws.engine) == 1
    finally:
        gc.enable()
    gc.collect()
    assert open_sqlite_connections(ws.engine) == 0
    ws.pipelines()
    ws.close()
    assert open_sqlite_connections(ws.engine) == 0
