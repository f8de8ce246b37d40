"""Properties of the stage funnel over random deal histories (skips, back moves, lost and re-opened, won and
re-opened, moves to another pipeline, ties in time), each built through the public API in a fresh SQLite file.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import fresh_sqlite_url
from tests.reference import assert_matches, reference_funnel
from tests.strategies import BASE, MAIN, OTHER, DealPlan, apply_history, histories
from voronka.analytics.stage_funnel import FunnelTotals, StageRow
from voronka.service.workspace import Workspace

PIPELINES = (MAIN["name"], OTHER["name"])
FAST = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def built(template: Path, directory: Path, plans: list[DealPlan]) -> tuple[Workspace, list[int]]:
    sub = directory / uuid.uuid4().hex[:8]
    sub.mkdir()
    ws = Workspace.connect(fresh_sqlite_url(template, sub))
    return ws, apply_history(ws, plans)


def in_unit(x: float | None) -> bool:
    return x is None or 0.0 <= x <= 1.0


def check_rows(stages: list[StageRow], overall: FunnelTotals, implied: bool) -> None:
    entered = overall.entered
    for s in stages:
        assert 0 <= s.reached <= entered
        assert s.passed is None or 0 <= s.passed <= s.reached
        for x in (
            s.conversion,
            s.ci_low,
            s.ci_high,
            s.conversion_from_start,
            s.from_start_ci_low,
            s.from_start_ci_high,
        ):
            assert in_unit(x), s
        if s.conversion is not None:
            assert s.ci_low <= s.conversion <= s.ci_high
        if s.conversion_from_start is not None:
            assert s.from_start_ci_low <= s.conversion_from_start <= s.from_start_ci_high
        assert sum(s.lost_reasons.values()) == s.lost
        assert s.median_days is None or 0 <= s.median_days <= s.p90_days
    for a, b in zip(stages, stages[1:], strict=False):
        if implied:  # reached never grows along the funnel (a skip passes the stages it skips)
            assert b.reached <= a.reached
            assert a.passed == b.reached
    if implied:
        assert stages[0].reached == entered
    assert stages[-1].reached == overall.won
    assert sum(s.lost for s in stages) == overall.lost
    assert sum(s.open for s in stages) == overall.open
    assert sum(s.moved_out for s in stages) == overall.moved_out
    assert overall.won + overall.lost + overall.open + overall.moved_out == entered
    for x in (overall.conversion, overall.ci_low, overall.ci_high):
        assert in_unit(x)
    if entered:
        assert overall.ci_low <= overall.conversion <= overall.ci_high


@FAST
@given(plans=histories)
def test_funnel_invariants(sqlite_template: Path, tmp_path: Path, plans: list[DealPlan]) -> None:
    ws, ids = built(sqlite_template, tmp_path, plans)
    try:
        for name in PIPELINES:
            implied = ws.funnel(name, by="owner")
            strict = ws.funnel(name, by="owner", strict=True)
            check_rows(implied.stages, implied.overall, implied=True)
            check_rows(strict.stages, strict.overall, implied=False)
            # --strict counts only what --implied counts and maybe less: never more.
            for i, s in zip(implied.stages, strict.stages, strict=True):
                assert s.reached <= i.reached
                assert (s.passed or 0) <= (i.passed or 0)
                assert (s.lost, s.open, s.moved_out, s.median_days) == (
                    i.lost,
                    i.open,
                    i.moved_out,
                    i.median_days,
                )
            assert strict.overall == implied.overall
            for g in implied.groups:
                check_rows(g.stages, g.overall, implied=True)
            for g in strict.groups:
                check_rows(g.stages, g.overall, implied=False)
        assert ws.funnel(MAIN["name"]).overall.entered == len(plans)  # every deal starts in Sales
    finally:
        ws.close()


@FAST
@given(plans=histories)
def test_replaying_the_move_log_gives_every_deals_cached_stage(
    sqlite_template: Path, tmp_path: Path, plans: list[DealPlan]
) -> None:
    ws, ids = built(sqlite_template, tmp_path, plans)
    try:
        for deal_id in ids:
            deal = ws.deal(deal_id)
            moves = ws.history(deal_id)
            where: tuple[int | None, int | None] = (None, None)
            for m in moves:
                assert m.from_stage_id == where[1]  # each move starts where the previous one ended
                assert ws.stage_of(m.stage_id)[0].id == m.pipeline_id
                where = (m.pipeline_id, m.stage_id)
            assert where == (deal.pipeline_id, deal.stage_id)
            assert deal.stage_since == moves[-1].at
            assert deal.created_at == moves[0].at
            assert [m.at for m in moves] == sorted(m.at for m in moves)
            assert deal.version == len(moves)
    finally:
        ws.close()


@FAST
@given(
    plans=histories,
    strict=st.booleans(),
    by=st.sampled_from([None, "owner", "source", "segment", "month"]),
    start_hours=st.none() | st.integers(0, 24 * 100),
    span_hours=st.none() | st.integers(1, 24 * 60),
)
def test_engine_agrees_with_the_model(
    sqlite_template: Path,
    tmp_path: Path,
    plans: list[DealPlan],
    strict: bool,
    by: str | None,
    start_hours: int | None,
    span_hours: int | None,
) -> None:
    start = None if start_hours is None else BASE + timedelta(hours=start_hours)
    end = None if span_hours is None else (start or BASE) + timedelta(hours=span_hours)
    ws, ids = built(sqlite_template, tmp_path, plans)
    try:
        query = {"strict": strict, "by": by, "start": start, "end": end}
        expected = {name: reference_funnel(ws, name, ids, **query) for name in PIPELINES}
        for name in PIPELINES:
            assert_matches(ws.funnel(name, **query).to_dict(), expected[name], name)  # type: ignore[arg-type]
    finally:
        ws.close()


@FAST
@given(plans=histories)
def test_the_compiled_kernel_gives_what_numpy_gives(
    sqlite_template: Path, tmp_path: Path, plans: list[DealPlan]
) -> None:
    """Big logs take their per-deal facts from the Numba kernel, small ones from NumPy: the same arrays."""
    import numpy as np

    from voronka.analytics import stage_funnel as sf
    from voronka.analytics._log import load_pipeline_log
    from voronka.analytics._stage_kernel import deal_facts

    ws, _ = built(sqlite_template, tmp_path, plans)
    try:
        for name in PIPELINES:
            pipe = ws.pipeline(name)
            log = load_pipeline_log(ws, pipe.id)
            n = len(pipe.open_stages)
            pos = sf._stage_positions(pipe, log)[log.move_stage]
            starts = np.flatnonzero(np.r_[True, log.move_deal[1:] != log.move_deal[:-1]]) if len(pos) else pos[:0]
            idx = np.searchsorted(log.deal_id, log.move_deal[starts])
            status = np.asarray(np.random.default_rng(len(pos)).integers(0, 4, len(starts)), dtype=np.int8)
            want = sf._facts_numpy(pos, log, starts, status, idx, n)
            got = deal_facts(pos, log.move_at, log.move_reason, starts, status, idx, log.deal_since, log.exit_at, n)
            for w, g in zip(want, got, strict=True):
                np.testing.assert_array_equal(np.asarray(w).reshape(np.shape(g)), g)
    finally:
        ws.close()
