"""Forecast use cases: read a pipeline's log once, then fit, simulate, backtest or plan on it."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import select

from voronka.analytics._log import load_pipeline_log
from voronka.analytics.forecast.backtest import BacktestResult, run_backtest
from voronka.analytics.forecast.forecast import ForecastQuery, ForecastResult, deal_p_win, run_forecast
from voronka.analytics.forecast.history import FlowHistory, history_from_log, open_deals
from voronka.analytics.forecast.model import fit
from voronka.analytics.forecast.reverse import NeedResult
from voronka.analytics.forecast.reverse import plan_need as reverse_plan
from voronka.domain.parse import parse_time
from voronka.errors import InputError
from voronka.service.rates import load_rates
from voronka.store.schema import deals, stage_moves
from voronka.store.types import to_micros
from voronka.store.workspace import WorkspaceStore


def load_history(
    store: WorkspaceStore, pipeline: str | int, *, currency: str | None = None, as_of: datetime | None = None
) -> FlowHistory:
    """The pipeline's move log with its deals' amounts, as the forecast models read it.

    Amounts are in one reporting currency: ``currency``, else the one most of the pipeline's deals use; amounts in
    others are converted at the latest dated rate on or before ``as_of`` (default today), and a missing rate is an
    error that says which one to add.
    """
    pipe = store.pipeline(pipeline)
    log = load_pipeline_log(store, pipe.id)
    ids = select(stage_moves.c.deal_id).where(stage_moves.c.pipeline_id == pipe.id)
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(deals.c.id, deals.c.amount, deals.c.currency, deals.c.snapshot).where(deals.c.id.in_(ids))
        ).all()
    counts = Counter(r.currency for r in rows)
    report = currency.strip().upper() if currency else (counts.most_common(1)[0][0] if counts else "—")
    day = (as_of or datetime.now(UTC)).date()
    factor: dict[str, float] = {}
    if set(counts) - {report}:
        rates = load_rates(store)
        factor = {c: rates.rate(c, report, day) for c in counts if c != report}
    by_id = {int(r.id): np.nan if r.amount is None else float(r.amount) * factor.get(r.currency, 1.0) for r in rows}
    amounts = np.array([by_id.get(int(i), np.nan) for i in log.deal_id], dtype=np.float64)
    h = history_from_log(pipe, log, amounts, report)
    snapshots = sum(1 for r in rows if r.snapshot)
    if snapshots:
        h.notes.append(
            f"{snapshots} of the {len(rows)} deals come from a snapshot import: only their creation and their current "
            f"stage are known, not the moves between, so their times in stage are not real and the model learns "
            f"little from them."
        )
    return h


def as_of_micros(as_of: datetime | None) -> int:
    return to_micros(as_of or datetime.now(UTC))


def forecast(
    store: WorkspaceStore, pipeline: str | int, query: ForecastQuery, currency: str | None = None
) -> ForecastResult:
    """Forecast ``pipeline`` as ``query`` says (the pipeline is looked up and the query checked first)."""
    if isinstance(query.as_of, str):
        query = replace(query, as_of=parse_time(query.as_of, what="--as-of date"))
    query.validate()
    h = load_history(store, pipeline, currency=currency, as_of=query.as_of)
    return run_forecast(h, as_of_micros(query.as_of), query)


def backtest(
    store: WorkspaceStore,
    pipeline: str | int,
    *,
    months: int = 3,
    paths: int = 2_000,
    hand: list[float] | None = None,
    now: datetime | str | None = None,
    min_history_days: int = 90,
) -> BacktestResult:
    """Rolling-origin backtest of the forecast of ``pipeline``; see :mod:`voronka.analytics.forecast.backtest`."""
    if not 100 <= paths <= 100_000:
        raise InputError(f"--paths {paths}: use between 100 and 100,000 paths per origin (default 2,000).")
    if isinstance(now, str):
        now = parse_time(now, what="--now date")
    h = load_history(store, pipeline)
    return run_backtest(h, as_of_micros(now), months=months, paths=paths, hand=hand, min_history_days=min_history_days)


def plan_need(
    store: WorkspaceStore,
    pipeline: str | int,
    target: float,
    *,
    months: int = 3,
    confidence: float = 0.8,
    paths: int = 10_000,
    as_of: datetime | str | None = None,
) -> NeedResult:
    """Leads needed for ``target`` revenue; see :mod:`voronka.analytics.forecast.reverse`."""
    if isinstance(as_of, str):
        as_of = parse_time(as_of, what="--as-of date")
    if not 100 <= paths <= 1_000_000:
        raise InputError(f"--paths {paths}: use between 100 and 1,000,000 paths (default 10,000).")
    h = load_history(store, pipeline)
    return reverse_plan(h, as_of_micros(as_of), target, months=months, confidence=confidence, paths=paths)


def deal_odds(store: WorkspaceStore, pipeline: str | int, as_of: datetime | str | None = None) -> pd.DataFrame:
    """Every open deal of ``pipeline`` with its data-driven P(win), given its stage and days there (for the board
    and the deal card): columns ``deal_id, stage, days_in_stage, p_win``."""
    if isinstance(as_of, str):
        as_of = parse_time(as_of, what="--as-of date")
    h = load_history(store, pipeline)
    at = as_of_micros(as_of)
    model = fit(h, at)
    now = open_deals(h.before(at), at)
    assert h.deal_ids is not None
    return pd.DataFrame(
        {
            "deal_id": h.deal_ids[now.index],
            "stage": [h.stages[s] for s in now.stage],
            "days_in_stage": now.age_days,
            "p_win": deal_p_win(model, now.stage, now.age_days),
        }
    )
