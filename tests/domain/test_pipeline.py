"""Pipelines and stages as pure values: lookups, loss reasons, layout rules, templates, move kinds."""

from __future__ import annotations

import pytest

from voronka.domain.deal import MoveKind, classify_move
from voronka.domain.pipeline import Pipeline, ProcessKind, Stage, StageKind, check_stage_layout
from voronka.domain.templates import TEMPLATES, get_template
from voronka.errors import InputError, NotFoundError

OPEN, WON, LOST = StageKind.OPEN, StageKind.WON, StageKind.LOST
STAGES = (
    Stage(11, 1, "Заявка", 0, OPEN),
    Stage(12, 1, "Call", 1, OPEN, 2.0),
    Stage(13, 1, "Contract", 2, OPEN),
    Stage(14, 1, "Won", 3, WON),
    Stage(15, 1, "Lost", 4, LOST),
    Stage(16, 1, "Spam", 5, LOST),
)
PIPE = Pipeline(1, "Sales", ProcessKind.NEW_CLIENTS, True, STAGES, ("Дорого", "No budget"), (1, 2))
OTHER = Stage(21, 2, "Offer", 0, OPEN)


def test_stage_groups() -> None:
    assert [s.name for s in PIPE.open_stages] == ["Заявка", "Call", "Contract"]
    assert PIPE.won_stage.name == "Won"
    assert [s.name for s in PIPE.lost_stages] == ["Lost", "Spam"]
    assert PIPE.stage("Call").is_open and not PIPE.stage("Won").is_open


@pytest.mark.parametrize("ref", [12, "12", "Call", "call", "CALL"])
def test_stage_by_id_or_name_in_any_case(ref: str | int) -> None:
    assert PIPE.stage(ref).id == 12


def test_cyrillic_stage_names_match_in_any_case() -> None:
    assert PIPE.stage("заявка").id == 11
    assert PIPE.stage("ЗАЯВКА").id == 11


@pytest.mark.parametrize("ref", ["Negotiation", "99", 99])
def test_unknown_stage_names_it_and_lists_the_stages(ref: str | int) -> None:
    with pytest.raises(NotFoundError) as err:
        PIPE.stage(ref)
    msg = str(err.value)
    assert msg.startswith("Stage ") and str(ref) in msg and "'Sales'" in msg
    assert "'Заявка', 'Call', 'Contract', 'Won', 'Lost', 'Spam'" in msg


@pytest.mark.parametrize("given", ["Дорого", "дорого", "ДОРОГО", "  дорого ", "no BUDGET"])
def test_reasons_match_case_insensitively_and_give_the_catalogue_spelling(given: str) -> None:
    assert PIPE.reason(given) in PIPE.reasons
    assert PIPE.reason(given).casefold() == given.strip().casefold()


def test_unknown_reason_lists_the_catalogue() -> None:
    with pytest.raises(NotFoundError, match=r"Loss reason 'Weather'.*'Дорого', 'No budget'"):
        PIPE.reason("Weather")


def test_reason_in_a_pipeline_without_reasons() -> None:
    bare = Pipeline(2, "Bare", ProcessKind.CUSTOM, False, STAGES)
    with pytest.raises(InputError, match="has no loss reasons"):
        bare.reason("Дорого")


@pytest.mark.parametrize(
    ("open_names", "won", "lost", "message"),
    [
        ([], "Won", ["Lost"], "at least one open stage"),
        (["A"], "Won", [], "at least one lost stage"),
        (["A", " "], "Won", ["Lost"], "cannot be empty"),
        (["Call", "call"], "Won", ["Lost"], "used twice"),
        (["A"], "Lost", ["lost"], "used twice"),
    ],
)
def test_layouts_that_are_not_funnels_are_refused(
    open_names: list[str], won: str, lost: list[str], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        check_stage_layout(open_names, won, lost)


def test_made_to_order_template_in_both_languages() -> None:
    t = get_template("made-to-order")
    assert t.stages("en") == (
        ["Request", "Call / qualification", "Preliminary estimate", "Exact estimate & contract"],
        "Sale",
    )
    open_ru, won_ru = t.stages("ru")
    assert open_ru[0] == "Заявка" and won_ru == "Продажа"
    assert set(TEMPLATES) >= {"classic5", "made-to-order", "marketing6"}


def test_unknown_template_lists_the_known_ones() -> None:
    with pytest.raises(NotFoundError, match=r"Unknown template 'kanban'.*made-to-order"):
        get_template("kanban")


@pytest.mark.parametrize(
    ("src", "dst", "kind"),
    [
        (None, 11, MoveKind.CREATE),
        (11, 12, MoveKind.FORWARD),
        (11, 13, MoveKind.SKIP),
        (13, 11, MoveKind.BACK),
        (12, 14, MoveKind.WON),
        (12, 15, MoveKind.LOST),
        (15, 16, MoveKind.LOST),
        (15, 12, MoveKind.REOPEN),
        (14, 13, MoveKind.REOPEN),
        (12, 12, MoveKind.SAME),
    ],
)
def test_move_kinds(src: int | None, dst: int, kind: MoveKind) -> None:
    assert classify_move(None if src is None else PIPE.stage(src), PIPE.stage(dst)) is kind


def test_move_to_another_pipeline_is_a_transfer() -> None:
    assert classify_move(PIPE.stage("Call"), OTHER) is MoveKind.TRANSFER
