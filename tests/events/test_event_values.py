"""The in-process engine's fast paths give exactly what its plain path gives: masks made by the compiled pass from
integer event values (``engine.event_rule``) against masks made in SQL, and batches entered on two threads against
one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.events.journeys import T0
from tests.events.test_properties import logs
from voronka.analytics.events import EventSource, Exclusion, FunnelQuery, FunnelQueryError, Step
from voronka.analytics.events import engine as E
from voronka.analytics.events.result import FunnelResult

CODES = {"a": 10, "b": 11, "c": 12, "x": 13, "y": 14}
FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def as_codes(log: pd.DataFrame, nulls: list[bool] | None = None) -> pd.DataFrame:
    """The log with its events as small integers (nullable: some may be missing)."""
    out = log.copy()
    codes = [CODES[e] for e in log["event"]]
    if nulls:
        codes = [None if nulls[i % len(nulls)] else c for i, c in enumerate(codes)]
    out["event"] = pd.array(codes, dtype="Int16")
    return out


@st.composite
def queries(draw: Any) -> dict[str, Any]:
    """Every option a plain-event-value funnel has."""
    mode = draw(st.sampled_from(["ordered", "strict", "any"]))
    kw: dict[str, Any] = {"window": draw(st.sampled_from([30, 50, 100])), "mode": mode}
    steps: list[Any] = [str(CODES[s]) for s in ("a", "b", "c")[: draw(st.integers(1, 3))]]
    if mode != "any" and len(steps) > 1 and draw(st.booleans()):
        steps[1] = Step(steps[1], within=timedelta(seconds=draw(st.sampled_from([10, 20]))))
    if draw(st.booleans()):
        steps[0] = Step(str(steps[0]), first_time=True)
    if draw(st.booleans()):
        steps = [*steps, str(CODES["a"])]
    kw["steps"] = tuple(steps)
    if mode != "any" and len(steps) > 1 and draw(st.booleans()):
        kw["exclusions"] = (Exclusion(Step(str(CODES["y"])), after=1),)
        kw["exclusion_policy"] = draw(st.sampled_from(["keep", "remove"]))
    if mode == "strict" and draw(st.booleans()):
        kw["tracked"] = (str(CODES["x"]),)
    if mode != "any" and draw(st.booleans()):
        kw["count"] = "attempts"
    if draw(st.booleans()):
        kw["start"] = datetime.fromtimestamp(T0 + draw(st.sampled_from([0, 20, 40])), UTC)
    if draw(st.booleans()):
        kw["end"] = datetime.fromtimestamp(T0 + draw(st.sampled_from([60, 90])), UTC)
        kw["after_range"] = draw(st.sampled_from(["allow", "clip"]))
    if draw(st.booleans()):
        kw["by"] = "ch"
        if mode != "any":
            kw["attribution"] = draw(st.sampled_from(["first_touch", "last_touch", "step"]))
            if kw["attribution"] == "step":
                kw["attribution_step"] = 1
    return kw


def _same(a: FunnelResult, b: FunnelResult) -> None:
    assert a.to_dict() == b.to_dict()
    order_a, order_b = np.lexsort((a.units.level, a.units.entity)), np.lexsort((b.units.level, b.units.entity))
    for x, y in zip(
        (a.units.entity, a.units.level, a.units.code, a.units.times),
        (b.units.entity, b.units.level, b.units.code, b.units.times),
        strict=True,
    ):
        np.testing.assert_array_equal(x[order_a], y[order_b])


def _run(log: pd.DataFrame, kw: dict[str, Any], **opts: Any) -> FunnelResult:
    return E.run_inprocess(EventSource(log), FunnelQuery(**kw), **opts)


@FAST
@given(logs(), queries(), st.lists(st.booleans(), max_size=5))
def test_masks_from_event_values_equal_masks_from_sql(log: pd.DataFrame, kw: dict[str, Any], nulls: list[bool]) -> None:
    coded = as_codes(log, nulls)
    q = FunnelQuery(**kw)
    assert E.event_rule(q, "SMALLINT") is not None  # the fast path is taken
    _same(_run(coded, kw), _run(coded, kw, event_values=False))


@FAST
@given(logs(), queries(), st.booleans())
def test_two_threads_enter_the_table_as_one_does(log: pd.DataFrame, kw: dict[str, Any], values: bool) -> None:
    coded = as_codes(log)
    saved = E._PARALLEL_ROWS
    E._PARALLEL_ROWS = 1  # every batch on two threads, however small
    try:
        two = _run(coded, kw, enter_threads=2, event_values=values)
    finally:
        E._PARALLEL_ROWS = saved
    _same(two, _run(coded, kw, enter_threads=1, event_values=values))


def test_a_big_batch_on_two_threads_grows_the_table_and_matches_one_thread() -> None:
    # Enough rows for two threads by default, entities enough for the tables to grow while both enter.
    rng = np.random.default_rng(7)
    n = 200_000
    log = pd.DataFrame(
        {
            "entity": rng.integers(0, 40_000, n).astype(np.int64) * 7919 - 11,
            "time": T0 + rng.integers(0, 5_000, n),
            "event": rng.integers(0, 8, n).astype(np.int16),
            "ch": rng.integers(0, 4, n).astype(np.int8),
        }
    )
    kw = {"steps": ("0", "1", "2"), "window": 600, "by": "ch"}
    two = _run(log, kw)
    assert two.steps[0].entities > 15_000  # of 40,000 entities in 128 buckets of 16 slots at first: they grow
    _same(two, _run(log, kw, enter_threads=1))
    _same(two, _run(log, kw, enter_threads=1, event_values=False))


def test_which_queries_take_the_event_value_path() -> None:
    plain = FunnelQuery(steps=("1", "2"))
    assert E.event_rule(plain, "BIGINT") is not None
    assert E.event_rule(plain, "VARCHAR") is None  # text events: masks in SQL
    assert E.event_rule(plain, "UBIGINT") is None  # values past int64
    assert E.event_rule(FunnelQuery(steps=("1", "view")), "INTEGER") is None  # a name that is no integer
    assert E.event_rule(FunnelQuery(steps=(Step("1", where=()), Step(where=(_w(),)))), "INTEGER") is None
    assert E.event_rule(FunnelQuery(steps=("1", str(1 << 20))), "INTEGER") is None  # values too far apart
    assert E.event_rule(FunnelQuery(steps=("1", "2"), mode="strict", tracked=("zz",)), "INTEGER") is None


def _w() -> Any:
    from voronka.analytics.events import Where

    return Where("event", "=", 1)


def test_event_values_at_the_ends_of_int64_match_only_themselves() -> None:
    lo, hi = -(2**63), 2**63 - 1
    log = pd.DataFrame(
        {
            "entity": [1, 1, 2, 2, 3, 3],
            "time": [T0, T0 + 1, T0, T0 + 1, T0, T0 + 1],
            "event": pd.array([hi - 1, hi, lo, lo + 1, hi - 1, None], dtype="Int64"),
        }
    )
    for steps in ((str(hi - 1), str(hi)), (str(lo), str(lo + 1))):
        kw = {"steps": steps, "window": 10}
        fast = _run(log, kw)
        _same(fast, _run(log, kw, event_values=False))
    assert [s.entities for s in _run(log, {"steps": (str(hi - 1), str(hi)), "window": 10}).steps] == [2, 1]


def test_every_option_on_a_bigger_log() -> None:
    # A few hundred entities on a coarse time grid (ties, rows exactly at the range's ends), some null events; a
    # fixed sample of option combinations, each through both mask makers.
    rng = np.random.default_rng(11)
    n = 6_000
    log = pd.DataFrame(
        {
            "entity": rng.integers(0, 400, n).astype(np.int64),
            "time": T0 + rng.integers(0, 20, n) * 10,
            "event": pd.array(rng.integers(10, 15, n), dtype="Int16"),
            "ch": rng.choice(["p", "q", "r"], n),
        }
    )
    log.loc[rng.random(n) < 0.03, "event"] = None
    at = [datetime.fromtimestamp(T0 + s, UTC) for s in (0, 60, 90, 150)]
    options = {
        "mode": ["ordered", "strict", "any"],
        "count": ["entities", "attempts"],
        "exclusions": [(), (Exclusion(Step("14"), after=1),)],
        "exclusion_policy": ["keep", "remove"],
        "range": [(None, None), (at[1], None), (None, at[2]), (at[1], at[3])],
        "after_range": ["allow", "clip"],
        "first": [False, True],
        "tracked": [None, ("13",)],
        "by": [None, "first_touch", "last_touch", "step"],
    }
    pick = np.random.default_rng(5)
    tried = 0
    while tried < 50:
        o = {k: v[pick.integers(len(v))] for k, v in options.items()}
        kw: dict[str, Any] = {"steps": (Step("10", first_time=o["first"]), "11", "12"), "window": 60}
        kw |= {"mode": o["mode"], "count": o["count"], "exclusions": o["exclusions"]}
        kw |= {"exclusion_policy": o["exclusion_policy"], "start": o["range"][0], "end": o["range"][1]}
        kw |= {"after_range": o["after_range"], "tracked": o["tracked"] if o["mode"] == "strict" else None}
        if o["by"] is not None:
            kw |= {"by": "ch", "attribution": o["by"], "attribution_step": 2 if o["by"] == "step" else None}
        try:
            FunnelQuery(**kw)
        except FunnelQueryError:
            continue  # a combination the rules refuse
        tried += 1
        _same(_run(log, kw), _run(log, kw, event_values=False))
