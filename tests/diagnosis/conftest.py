"""The demo workspace (built once per session) and synthetic deal tables with no effect planted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import voronka
from voronka.analytics.diagnosis.deals import DealTable
from voronka.domain.pipeline import Pipeline, ProcessKind, Stage, StageKind
from voronka.service.demo import build_demo
from voronka.service.workspace import Workspace

NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="session")
def demo_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    ws = voronka.open(f"sqlite:///{path}")
    build_demo(ws, seed=7, n_deals=3000, now=NOW)
    ws.close()
    return path


@pytest.fixture
def demo(demo_path: Path) -> Workspace:
    ws = voronka.open(f"sqlite:///{demo_path}")
    yield ws
    ws.close()


def pipeline(n_open: int = 4, sla: float | None = 5.0) -> Pipeline:
    stages = [Stage(i + 1, 1, f"S{i}", i, StageKind.OPEN, sla) for i in range(n_open)]
    stages.append(Stage(n_open + 1, 1, "Won", n_open, StageKind.WON))
    stages.append(Stage(n_open + 2, 1, "Lost", n_open + 1, StageKind.LOST))
    return Pipeline(1, "Synthetic", ProcessKind.NEW_CLIENTS, True, tuple(stages))


def synthetic(
    seed: int,
    *,
    rates: tuple[float, ...] = (0.7, 0.7, 0.7, 0.7),
    owners: int = 6,
    deals: int = 2000,
    owner_effect: dict[int, tuple[int, float]] | None = None,
    start: str = "2025-11-01",
    days: int = 365,
) -> DealTable:
    """Deals walking a funnel with the given stage rates, every deal decided (won or lost); no effect unless
    ``owner_effect`` = {owner index: (stage, rate)}."""
    rng = np.random.default_rng(seed)
    n = len(rates)
    owner = rng.integers(owners, size=deals)
    entry = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(rng.uniform(0, days, deals), unit="D")
    max_pos = np.zeros(deals, dtype=np.int64)
    alive = np.ones(deals, dtype=bool)
    for k in range(n):
        p = np.full(deals, rates[k])
        for o, (stage, rate) in (owner_effect or {}).items():
            if stage == k:
                p[owner == o] = rate
        step = alive & (rng.random(deals) < p)
        max_pos[step] = k + 1
        alive = step
    won = max_pos == n
    reach = {}
    t = entry
    for k in range(n + 1):
        reach[f"reach_{k}"] = pd.Series(t).where(max_pos >= k)
        t = t + pd.to_timedelta(rng.exponential(3, deals), unit="D")
    closed = pd.Series(t)
    frame = pd.DataFrame(
        {
            "deal_id": np.arange(1, deals + 1),
            "entry": entry,
            "owner": [f"M{o}" for o in owner],
            "source": rng.choice(["a", "b", "c"], deals),
            "segment": rng.choice(["x", "y"], deals),
            "status": np.where(won, "won", "lost"),
            "max_pos": max_pos,
            "stop_pos": np.where(won, -1, max_pos),
            "cur_pos": -1,
            "reason": np.where(won, None, "No need"),
            "closed_at": closed,
            **reach,
            **{f"stay_{k}": np.where(max_pos > k, rng.exponential(2, deals), np.nan) for k in range(n)},
            "amount": rng.lognormal(11, 0.5, deals),
            "custom": [{} for _ in range(deals)],
            "first_call": entry + pd.to_timedelta(rng.lognormal(0, 0.6, deals), unit="h"),
        }
    )
    return DealTable(pipeline(n), frame)
