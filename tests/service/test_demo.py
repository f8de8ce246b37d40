"""The demo workspace is deterministic, has every kind of move, and shows the effects planted in it."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

import voronka
from voronka.domain.deal import MoveKind, classify_move
from voronka.service.demo import MANAGERS, NEW_CLIENTS, SLOW_MANAGER, build_demo
from voronka.service.workspace import Workspace

NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    ws = voronka.open(f"sqlite:///{path}")
    build_demo(ws, seed=7, n_deals=3000, now=NOW)
    return ws


def test_shape(demo: Workspace) -> None:
    pipes = demo.pipelines()
    assert [p.process.value for p in pipes] == ["new_clients", "repeat_sales", "win_back"]
    total = sum(demo.funnel(p.name).overall.entered for p in pipes)
    assert total == 3000
    assert set(MANAGERS) <= set(demo.users())


def test_every_kind_of_move_happens(demo: Workspace) -> None:
    kinds: Counter[MoveKind] = Counter()
    for deal_id in range(1, 400):
        prev = None
        for m in demo.history(deal_id):
            _, dst = demo.stage_of(m.stage_id)
            kinds[classify_move(prev, dst)] += 1
            prev = dst
    for kind in (MoveKind.FORWARD, MoveKind.SKIP, MoveKind.BACK, MoveKind.LOST, MoveKind.WON, MoveKind.REOPEN):
        assert kinds[kind] > 0, kind


def test_slow_manager_is_visibly_worse_at_the_first_step(demo: Workspace) -> None:
    by_owner = {g.group: g.stages[0] for g in demo.funnel(NEW_CLIENTS.name, by="owner").groups}
    slow = by_owner.pop(SLOW_MANAGER)
    assert slow.ci_high is not None
    assert all(slow.ci_high < other.ci_low for other in by_owner.values())


def test_bottleneck_stage_converts_worst(demo: Workspace) -> None:
    stages = demo.funnel(NEW_CLIENTS.name).stages[:-1]
    worst = min(stages, key=lambda s: s.conversion or 0)
    assert worst.name == "Предварительный расчёт"
    assert all(worst.ci_high < s.ci_low for s in stages if s is not worst)
    assert max(worst.lost_reasons, key=worst.lost_reasons.__getitem__) == "Дорого"


def test_stuck_deals_exist(demo: Workspace) -> None:
    stuck = demo.stuck(now=NOW).deals
    assert 20 < len(stuck) < 600
    assert all(d.days_in_stage > d.sla_days for d in stuck)


def test_same_seed_same_workspace(demo: Workspace, tmp_path: Path) -> None:
    again = voronka.open(f"sqlite:///{tmp_path / 'again.db'}")
    build_demo(again, seed=7, n_deals=3000, now=NOW)
    for p in demo.pipelines():
        assert again.funnel(p.name, by="owner").to_dict() == demo.funnel(p.name, by="owner").to_dict()


def test_refuses_a_non_empty_workspace(demo: Workspace) -> None:
    with pytest.raises(voronka.InputError, match="--replace"):
        build_demo(demo, now=NOW)
