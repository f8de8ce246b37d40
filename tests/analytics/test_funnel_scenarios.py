"""Stage funnels of small scenarios written as data, against reports computed by hand.

Every scenario is built through the public API with ``deals_for({...})`` on each backend (SQLite through ADBC,
PostgreSQL through SQLAlchemy). Pipeline Sales has open stages Request(0) Call(1) Estimate(2) Contract(3), then
Won and Lost; Repeat has Offer(0) Invoice(1), Won, Lost. Times are days in January 2026 unless said otherwise.

A row of an expected report is
``(stage, reached, passed, conversion, lost, lost_reasons, open, moved_out, median_days, p90_days)``;
quantiles interpolate linearly (as numpy.quantile): p90 of sorted [a, b, c] is b + 0.8 (c - b).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.reference import assert_matches, reference_funnel, wilson_ref
from voronka.analytics.stage_funnel import StageFunnelResult
from voronka.errors import InputError
from voronka.service.workspace import Workspace

SALES = {
    "name": "Sales",
    "stages": ["Request", "Call", "Estimate", "Contract"],
    "reasons": ["Дорого", "No budget"],
}
REPEAT = {"name": "Repeat", "stages": ["Offer", "Invoice"], "reasons": ["Дорого"]}

Build = Callable[[dict[str, Any]], list[int]]
Row = tuple[str, int, int | None, float | None, int, dict[str, int], int, int, float | None, float | None]


def check(result: StageFunnelResult, rows: list[Row], overall: dict[str, Any]) -> None:
    """Assert the whole report: the hand-computed numbers, and the rates and intervals that follow from them."""
    entered = overall["entered"]
    assert result.overall.entered == entered
    assert [s.name for s in result.stages] == [r[0] for r in rows]
    for s, (name, reached, passed, conv, lost, reasons, open_, moved, med, p90) in zip(
        result.stages, rows, strict=True
    ):
        got = (s.reached, s.passed, s.lost, s.lost_reasons, s.open, s.moved_out, s.median_days, s.p90_days)
        assert got == (reached, passed, lost, reasons, open_, moved, med, p90), name
        if conv is None:
            assert s.conversion is None, name
        else:
            assert s.conversion == pytest.approx(conv, abs=1e-12), name
        assert s.conversion_from_start == pytest.approx(reached / entered, abs=1e-12), name
        assert (s.from_start_ci_low, s.from_start_ci_high) == pytest.approx(wilson_ref(reached, entered), abs=1e-9)
        if passed is not None:
            ci = wilson_ref(passed, reached)
            if reached:
                assert (s.ci_low, s.ci_high) == pytest.approx(ci, abs=1e-9), name
            else:
                assert (s.ci_low, s.ci_high) == (None, None), name
    o = result.overall
    for key, want in overall.items():
        assert getattr(o, key) == want, key
    assert o.conversion == pytest.approx(o.won / o.entered, abs=1e-12)
    assert (o.ci_low, o.ci_high) == pytest.approx(wilson_ref(o.won, o.entered), abs=1e-9)
    assert o.won + o.lost + o.open + o.moved_out == o.entered


def check_model(ws: Workspace, pipeline: str, ids: list[int], **query: Any) -> None:
    """The engine also agrees with the slow model in tests/reference.py (an extra check, not the spec)."""
    assert_matches(ws.funnel(pipeline, **query).to_dict(), reference_funnel(ws, pipeline, ids, **query))


# -- skip -----------------------------------------------------------------------------------------------------

SKIP = {
    "pipeline": SALES,
    "deals": [
        {
            "owner": "Anna",
            "path": [("Request", "2026-01-01"), ("Estimate", "2026-01-03"), ("Won", "2026-01-08")],
        },
        {
            "owner": "Anna",
            "path": [
                ("Request", "2026-01-02"),
                ("Call", "2026-01-03"),
                ("Contract", "2026-01-05"),
                ("Lost", "2026-01-07", "Дорого"),
            ],
        },
        {"owner": "Boris", "path": [("Request", "2026-01-03"), ("Contract", "2026-01-04")]},
        {"owner": "Boris", "path": [("Request", "2026-01-04")]},
    ],
}


def test_skip(ws: Workspace, deals_for: Build) -> None:
    ids = deals_for(SKIP)
    # D1 Request -> Estimate (skips Call) -> Won;  D2 Request -> Call -> Contract (skips Estimate) -> Lost;
    # D3 Request -> Contract (skips Call, Estimate), open;  D4 sits in Request.
    # Implied: furthest stage D1 Won(4), D2 Contract(3), D3 Contract(3), D4 Request(0); a skip passes the stages.
    #   reached = #deals whose furthest stage >= k: Request 4, Call 3, Estimate 3, Contract 3, Won 1.
    #   passed k = reached k+1: 3, 3, 3, 1.  Lost: D2 at Contract (its last open stage), "Дорого".
    # Time in stage, finished stays only (D4 still in Request, D3 still in Contract do not count there):
    #   Request D1 2, D2 1, D3 1 -> [1, 1, 2]: median 1, p90 1 + 0.8 * 1 = 1.8.  Call D2 2.  Estimate D1 5.
    #   Contract D2 2.  Cycle: D1 Jan 1 -> Jan 8 = 7 days.
    check(
        ws.funnel("Sales"),
        [
            ("Request", 4, 3, 3 / 4, 0, {}, 1, 0, 1.0, 1.8),
            ("Call", 3, 3, 1.0, 0, {}, 0, 0, 2.0, 2.0),
            ("Estimate", 3, 3, 1.0, 0, {}, 0, 0, 5.0, 5.0),
            ("Contract", 3, 1, 1 / 3, 1, {"Дорого": 1}, 1, 0, 2.0, 2.0),
            ("Won", 1, None, None, 0, {}, 0, 0, None, None),
        ],
        dict(entered=4, won=1, lost=1, open=2, moved_out=0, median_cycle_days=7.0, p90_cycle_days=7.0),
    )
    # Strict: only stages actually entered. Request 4 (all), Call D2, Estimate D1, Contract D2 D3, Won D1.
    #   passed = entered k and was later further: Request D1 D2 D3 = 3; Call D2 = 1; Estimate D1 = 1;
    #   Contract: D2 and D3 went no further = 0. Losses, open deals and times do not depend on the mode.
    check(
        ws.funnel("Sales", strict=True),
        [
            ("Request", 4, 3, 3 / 4, 0, {}, 1, 0, 1.0, 1.8),
            ("Call", 1, 1, 1.0, 0, {}, 0, 0, 2.0, 2.0),
            ("Estimate", 1, 1, 1.0, 0, {}, 0, 0, 5.0, 5.0),
            ("Contract", 2, 0, 0.0, 1, {"Дорого": 1}, 1, 0, 2.0, 2.0),
            ("Won", 1, None, None, 0, {}, 0, 0, None, None),
        ],
        dict(entered=4, won=1, lost=1, open=2, moved_out=0, median_cycle_days=7.0, p90_cycle_days=7.0),
    )
    check_model(ws, "Sales", ids)
    check_model(ws, "Sales", ids, strict=True)


# -- back and forth -------------------------------------------------------------------------------------------

BACK_AND_FORTH = {
    "pipeline": SALES,
    "deals": [
        {
            "path": [
                ("Request", "2026-01-01"),
                ("Call", "2026-01-02"),
                ("Estimate", "2026-01-04"),
                ("Call", "2026-01-05"),
                ("Estimate", "2026-01-08"),
                ("Won", "2026-01-10"),
            ]
        },
        {
            "path": [
                ("Request", "2026-01-01"),
                ("Call", "2026-01-03"),
                ("Request", "2026-01-04"),
                ("Call", "2026-01-06"),
            ]
        },
        {
            "path": [
                ("Request", "2026-01-02"),
                ("Estimate", "2026-01-03"),
                ("Request", "2026-01-05"),
                ("Lost", "2026-01-06", "No budget"),
            ]
        },
    ],
}


def test_back_and_forth(ws: Workspace, deals_for: Build) -> None:
    ids = deals_for(BACK_AND_FORTH)
    # D1 Request, Call, Estimate, back to Call, Estimate, Won.  D2 Request, Call, back to Request, Call (open).
    # D3 Request, Estimate, back to Request, Lost "No budget": lost at Request, the last open stage it was in.
    # Furthest: D1 Won(4), D2 Call(1), D3 Estimate(2). Counts are of deals: D1 in Call twice counts once.
    #   reached: Request 3, Call 3, Estimate 2 (D1 D3), Contract 1 (D1 won), Won 1; passed 3, 2, 1, 1.
    # Time in stage adds up re-entries: D1 Call 2 + 3 = 5, Estimate 1 + 2 = 3, Request 1.
    #   D2 Request 2 + 2 = 4; Call not counted (in it now, though it left it once).  D3 Request 1 + 1 = 2,
    #   Estimate 2.  Request [1, 2, 4]: median 2, p90 2 + 0.8 * 2 = 3.6.  Estimate [2, 3]: 2.5, 2.9.
    check(
        ws.funnel("Sales"),
        [
            ("Request", 3, 3, 1.0, 1, {"No budget": 1}, 0, 0, 2.0, 3.6),
            ("Call", 3, 2, 2 / 3, 0, {}, 1, 0, 5.0, 5.0),
            ("Estimate", 2, 1, 1 / 2, 0, {}, 0, 0, 2.5, 2.9),
            ("Contract", 1, 1, 1.0, 0, {}, 0, 0, None, None),
            ("Won", 1, None, None, 0, {}, 0, 0, None, None),
        ],
        dict(entered=3, won=1, lost=1, open=1, moved_out=0, median_cycle_days=9.0, p90_cycle_days=9.0),
    )
    # Strict: Call D1 D2 (D3 skipped it), Estimate D1 D3, Contract nobody entered it.
    #   passed: Request 3; Call D1 (D2 went no further) = 1; Estimate D1 (D3 only came back) = 1; Contract 0 of 0.
    check(
        ws.funnel("Sales", strict=True),
        [
            ("Request", 3, 3, 1.0, 1, {"No budget": 1}, 0, 0, 2.0, 3.6),
            ("Call", 2, 1, 1 / 2, 0, {}, 1, 0, 5.0, 5.0),
            ("Estimate", 2, 1, 1 / 2, 0, {}, 0, 0, 2.5, 2.9),
            ("Contract", 0, 0, None, 0, {}, 0, 0, None, None),
            ("Won", 1, None, None, 0, {}, 0, 0, None, None),
        ],
        dict(entered=3, won=1, lost=1, open=1, moved_out=0, median_cycle_days=9.0, p90_cycle_days=9.0),
    )
    check_model(ws, "Sales", ids)
    check_model(ws, "Sales", ids, strict=True)


# -- lost, then re-opened -------------------------------------------------------------------------------------

REOPENED = {
    "pipeline": SALES,
    "deals": [
        {
            "path": [
                ("Request", "2026-01-01"),
                ("Call", "2026-01-02"),
                ("Lost", "2026-01-03", "Дорого"),
                ("Call", "2026-01-05"),
                ("Won", "2026-01-09"),
            ]
        },
        {
            "path": [
                ("Request", "2026-01-01"),
                ("Lost", "2026-01-02", "no budget"),
                ("Estimate", "2026-01-04"),
            ]
        },
        {"path": [("Request", "2026-01-02"), ("Won", "2026-01-03"), ("Contract", "2026-01-06")]},
        {
            "path": [
                ("Request", "2026-01-03"),
                ("Call", "2026-01-04"),
                ("Lost", "2026-01-05", "Дорого"),
                ("Call", "2026-01-06"),
                ("Lost", "2026-01-08", "NO BUDGET"),
            ]
        },
    ],
}


def test_lost_then_reopened(ws: Workspace, deals_for: Build) -> None:
    ids = deals_for(REOPENED)
    # Outcomes count where a deal stands now: D1 lost, re-opened, won -> won.  D2 lost, re-opened into
    # Estimate -> open.  D3 won, re-opened into Contract -> open (not won).  D4 lost, re-opened, lost again at
    # Call with "No budget" (the reason of the final move; "NO BUDGET" matches it) -> lost once.
    # Furthest: D1 Won(4), D2 Estimate(2), D3 Contract(3) (its past Won does not count: it is not won now),
    # D4 Call(1).  reached: Request 4, Call 4, Estimate 3, Contract 2, Won 1; passed 4, 3, 2, 1.
    # Times (stays in Lost or Won are not stage times): Request 1, 1, 1, 1.  Call D1 1 + 4 = 5, D4 1 + 2 = 3
    # -> [3, 5]: median 4, p90 3 + 0.9 * 2 = 4.8.  Estimate and Contract: only deals still in them.
    check(
        ws.funnel("Sales"),
        [
            ("Request", 4, 4, 1.0, 0, {}, 0, 0, 1.0, 1.0),
            ("Call", 4, 3, 3 / 4, 1, {"No budget": 1}, 0, 0, 4.0, 4.8),
            ("Estimate", 3, 2, 2 / 3, 0, {}, 1, 0, None, None),
            ("Contract", 2, 1, 1 / 2, 0, {}, 1, 0, None, None),
            ("Won", 1, None, None, 0, {}, 0, 0, None, None),
        ],
        dict(entered=4, won=1, lost=1, open=2, moved_out=0, median_cycle_days=8.0, p90_cycle_days=8.0),
    )
    # Strict: Call D1 D4, Estimate D2, Contract D3, Won D1.  passed: Request 4; Call D1 = 1; Estimate 0; Contract 0.
    check(
        ws.funnel("Sales", strict=True),
        [
            ("Request", 4, 4, 1.0, 0, {}, 0, 0, 1.0, 1.0),
            ("Call", 2, 1, 1 / 2, 1, {"No budget": 1}, 0, 0, 4.0, 4.8),
            ("Estimate", 1, 0, 0.0, 0, {}, 1, 0, None, None),
            ("Contract", 1, 0, 0.0, 0, {}, 1, 0, None, None),
            ("Won", 1, None, None, 0, {}, 0, 0, None, None),
        ],
        dict(entered=4, won=1, lost=1, open=2, moved_out=0, median_cycle_days=8.0, p90_cycle_days=8.0),
    )
    check_model(ws, "Sales", ids)


# -- moved to another pipeline --------------------------------------------------------------------------------

MOVED = {
    "pipelines": [SALES, REPEAT],
    "deals": [
        {
            "path": [
                ("Request", "2026-01-01"),
                ("Call", "2026-01-03"),
                (("Repeat", "Offer"), "2026-01-04"),
                ("Invoice", "2026-01-06"),
                ("Won", "2026-01-07"),
            ]
        },
        {
            "path": [
                ("Request", "2026-01-02"),
                ("Estimate", "2026-01-05"),
                (("Repeat", "Invoice"), "2026-01-06"),
            ]
        },
        {"path": [("Request", "2026-01-02"), ("Call", "2026-01-03"), ("Won", "2026-01-09")]},
        {"path": [(("Repeat", "Offer"), "2026-01-05"), ("Lost", "2026-01-07", "дорого")]},
    ],
}


def test_moved_to_another_pipeline(ws: Workspace, deals_for: Build) -> None:
    ids = deals_for(MOVED)
    # Sales: D1 Request, Call, out to Repeat; D2 Request, Estimate, out to Repeat; D3 Request, Call, Won.
    #   D1 and D2 are "moved out" at the last Sales stage they were in (Call, Estimate), neither won nor lost.
    #   reached: Request 3, Call 3, Estimate 2 (D2 D3), Contract 1, Won 1; passed 3, 2, 1, 1.
    #   A stay ends when the deal leaves the pipeline: Request D1 2, D2 3, D3 1 -> [1, 2, 3]: 2, 2.8;
    #   Call D1 1 (Jan 3 -> out Jan 4), D3 6 -> [1, 6]: 3.5, 1 + 0.9 * 5 = 5.5;  Estimate D2 1.
    check(
        ws.funnel("Sales"),
        [
            ("Request", 3, 3, 1.0, 0, {}, 0, 0, 2.0, 2.8),
            ("Call", 3, 2, 2 / 3, 0, {}, 0, 1, 3.5, 5.5),
            ("Estimate", 2, 1, 1 / 2, 0, {}, 0, 1, 1.0, 1.0),
            ("Contract", 1, 1, 1.0, 0, {}, 0, 0, None, None),
            ("Won", 1, None, None, 0, {}, 0, 0, None, None),
        ],
        dict(entered=3, won=1, lost=0, open=0, moved_out=2, median_cycle_days=7.0, p90_cycle_days=7.0),
    )
    # Repeat: entered by D1 (moved in Jan 4), D2 (moved in Jan 6, straight to Invoice), D4 (created Jan 5).
    #   D1 won, D2 open in Invoice, D4 lost at Offer "Дорого" (given as "дорого").
    #   reached: Offer 3, Invoice 2, Won 1; passed 2, 1.  Offer D1 2, D4 2; Invoice D1 1 (D2 is still there).
    #   The cycle counts from entering this pipeline: D1 Jan 4 -> Jan 7 = 3 days.
    check(
        ws.funnel("Repeat"),
        [
            ("Offer", 3, 2, 2 / 3, 1, {"Дорого": 1}, 0, 0, 2.0, 2.0),
            ("Invoice", 2, 1, 1 / 2, 0, {}, 1, 0, 1.0, 1.0),
            ("Won", 1, None, None, 0, {}, 0, 0, None, None),
        ],
        dict(entered=3, won=1, lost=1, open=1, moved_out=0, median_cycle_days=3.0, p90_cycle_days=3.0),
    )
    # Strict Repeat: D2 skipped Offer. Offer D1 D4, passed D1; Invoice D1 D2, passed D1.
    check(
        ws.funnel("Repeat", strict=True),
        [
            ("Offer", 2, 1, 1 / 2, 1, {"Дорого": 1}, 0, 0, 2.0, 2.0),
            ("Invoice", 2, 1, 1 / 2, 0, {}, 1, 0, 1.0, 1.0),
            ("Won", 1, None, None, 0, {}, 0, 0, None, None),
        ],
        dict(entered=3, won=1, lost=1, open=1, moved_out=0, median_cycle_days=3.0, p90_cycle_days=3.0),
    )
    check_model(ws, "Sales", ids)
    check_model(ws, "Repeat", ids)


def test_a_deal_that_comes_back_stops_the_clock_when_it_leaves(ws: Workspace, deals_for: Build) -> None:
    deals_for(
        {
            "pipelines": [SALES, REPEAT],
            "deals": [
                {
                    "path": [
                        ("Request", "2026-01-01"),
                        (("Repeat", "Offer"), "2026-01-02"),
                        (("Sales", "Call"), "2026-01-10"),
                        ("Won", "2026-01-11"),
                    ]
                }
            ],
        }
    )
    # In Request from Jan 1 until it left Sales on Jan 2: 1 day (not the 9 days until it came back).
    # In Call from Jan 10 to Jan 11: 1 day.
    stages = ws.funnel("Sales").stages
    assert (stages[0].median_days, stages[1].median_days) == (1.0, 1.0)


# -- ties in time ---------------------------------------------------------------------------------------------

TIES = {
    "pipeline": SALES,
    "deals": [
        {
            "path": [
                ("Request", "2026-01-01T10:00"),
                ("Call", "2026-01-01T10:00"),
                ("Estimate", "2026-01-01T10:00"),
                ("Won", "2026-01-03T10:00"),
            ]
        },
        {
            "path": [
                ("Request", "2026-01-01T10:00"),
                ("Call", "2026-01-02T10:00"),
                ("Lost", "2026-01-02T10:00", "Дорого"),
            ]
        },
        {"path": [("Request", "2026-01-01T10:00")]},
    ],
}


def test_ties_in_time(ws: Workspace, deals_for: Build) -> None:
    ids = deals_for(TIES)
    # Moves at the same instant keep their log order. D1 passes Request and Call at 10:00 sharp (0 days in
    # each; a stay of 0 that ended is a finished stay), Estimate 2 days, Won.  D2 Request 1 day, enters Call and
    # is lost at the same instant: lost at Call (0 days there).  D3 created at the same instant, still in Request.
    # Furthest: D1 Won, D2 Call, D3 Request.  reached 3, 2, 1, 1, 1; passed 2, 1, 1, 1.
    # Request [0, 1]: median 0.5, p90 0.9.  Call [0, 0].  Estimate [2].
    check(
        ws.funnel("Sales"),
        [
            ("Request", 3, 2, 2 / 3, 0, {}, 1, 0, 0.5, 0.9),
            ("Call", 2, 1, 1 / 2, 1, {"Дорого": 1}, 0, 0, 0.0, 0.0),
            ("Estimate", 1, 1, 1.0, 0, {}, 0, 0, 2.0, 2.0),
            ("Contract", 1, 1, 1.0, 0, {}, 0, 0, None, None),
            ("Won", 1, None, None, 0, {}, 0, 0, None, None),
        ],
        dict(entered=3, won=1, lost=1, open=1, moved_out=0, median_cycle_days=2.0, p90_cycle_days=2.0),
    )
    check_model(ws, "Sales", ids)
    check_model(ws, "Sales", ids, strict=True)


# -- the population [from, to) --------------------------------------------------------------------------------

PERIOD = {
    "pipelines": [SALES, REPEAT],
    "deals": [
        {"path": [("Request", "2026-01-31T23:59"), ("Call", "2026-02-03")]},
        {"path": [("Request", "2026-02-01T00:00"), ("Won", "2026-02-10")]},
        {"path": [("Request", "2026-02-15"), ("Lost", "2026-02-16", "Дорого")]},
        {"path": [("Request", "2026-03-01T00:00")]},
        {
            "path": [
                (("Repeat", "Offer"), "2026-01-20"),
                (("Sales", "Call"), "2026-02-20"),
                ("Estimate", "2026-03-05"),
            ]
        },
    ],
}


def test_period_is_entry_in_from_to(ws: Workspace, deals_for: Build) -> None:
    ids = deals_for(PERIOD)
    # [Feb 1, Mar 1): by when a deal entered Sales. D1 entered Jan 31 23:59 (out, though it moved in February);
    # D2 at Feb 1 00:00 (in: from is inclusive); D3 Feb 15 (in); D4 at Mar 1 00:00 (out: to is exclusive);
    # D5 was created in Repeat in January but entered Sales on Feb 20 (in), straight into Call.
    # In: D2 won (Request 9 days, cycle 9), D3 lost at Request (1 day), D5 open in Estimate (Call 13 days).
    #   reached: Request 3 (D5 is past it), Call 2, Estimate 2, Contract 1, Won 1; passed 2, 2, 1, 1.
    #   Request [1, 9]: median 5, p90 1 + 0.9 * 8 = 8.2.
    result = ws.funnel("Sales", start="2026-02-01", end="2026-03-01")
    check(
        result,
        [
            ("Request", 3, 2, 2 / 3, 1, {"Дорого": 1}, 0, 0, 5.0, 8.2),
            ("Call", 2, 2, 1.0, 0, {}, 0, 0, 13.0, 13.0),
            ("Estimate", 2, 1, 1 / 2, 0, {}, 1, 0, None, None),
            ("Contract", 1, 1, 1.0, 0, {}, 0, 0, None, None),
            ("Won", 1, None, None, 0, {}, 0, 0, None, None),
        ],
        dict(entered=3, won=1, lost=1, open=1, moved_out=0, median_cycle_days=9.0, p90_cycle_days=9.0),
    )
    assert (result.start, result.end) == (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    assert "[2026-02-01, 2026-03-01)" in result.definition
    # Open-ended periods: all 5; from Feb 1: D2 D3 D4 D5; before Mar 1: D1 D2 D3 D5.
    assert ws.funnel("Sales").overall.entered == 5
    assert ws.funnel("Sales", start="2026-02-01").overall.entered == 4
    assert ws.funnel("Sales", end="2026-03-01").overall.entered == 4
    assert ws.funnel("Sales", start="2026-02-01T00:00:01", end="2026-03-01").overall.entered == 2
    # An empty period is a report of nothing, not an error.
    empty = ws.funnel("Sales", start="2027-01-01")
    assert (empty.overall.entered, empty.overall.conversion, empty.overall.median_cycle_days) == (
        0,
        None,
        None,
    )
    assert [s.reached for s in empty.stages] == [0] * 5
    assert all(s.conversion is None and s.ci_low is None for s in empty.stages)
    for query in (
        {"start": "2026-02-01", "end": "2026-03-01"},
        {"end": "2026-02-16"},
        {"start": "2026-02-02"},
    ):
        check_model(ws, "Sales", ids, start=_t(query.get("start")), end=_t(query.get("end")))


def _t(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_period_that_is_empty_or_reversed_is_refused(ws: Workspace) -> None:
    ws.create_pipeline("Sales", stages=["A"])
    with pytest.raises(InputError, match=r"--from 2026-03-01 is not before --to 2026-03-01"):
        ws.funnel("Sales", start="2026-03-01", end="2026-03-01")
    with pytest.raises(InputError, match="Malformed --from date '1 March'"):
        ws.funnel("Sales", start="1 March")
    with pytest.raises(InputError, match="Unknown breakdown 'city'"):
        ws.funnel("Sales", by="city")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="Confidence 1.5"):
        ws.funnel("Sales", confidence=1.5)


def test_a_pipeline_without_deals(ws: Workspace) -> None:
    ws.create_pipeline("Sales", stages=["A", "B"])
    result = ws.funnel("Sales", by="owner")
    assert result.overall.entered == 0 and result.groups == []
    assert [(s.name, s.reached, s.passed) for s in result.stages] == [
        ("A", 0, 0),
        ("B", 0, 0),
        ("Won", 0, None),
    ]


# -- breakdowns -----------------------------------------------------------------------------------------------

GROUPS = {
    "pipeline": SALES,
    "deals": [
        {
            "owner": "Anna",
            "source": "web",
            "segment": "b2b",
            "path": [("Request", "2026-01-05"), ("Won", "2026-01-10")],
        },
        {
            "owner": "Anna",
            "source": "ads",
            "path": [("Request", "2026-01-20"), ("Call", "2026-01-21"), ("Lost", "2026-01-25", "Дорого")],
        },
        {
            "owner": "Boris",
            "source": "web",
            "segment": "b2c",
            "path": [("Request", "2026-02-03"), ("Estimate", "2026-02-05")],
        },
        {"source": "referral", "segment": "b2b", "path": [("Request", "2026-02-10")]},
    ],
}


def test_breakdowns(ws: Workspace, deals_for: Build) -> None:
    ids = deals_for(GROUPS)
    # D1 Anna/web/b2b won Jan 10 (Request 5 d); D2 Anna/ads/no segment lost at Call (Request 1 d, Call 4 d);
    # D3 Boris/web/b2c open in Estimate (Request 2 d); D4 no owner/referral/b2b open in Request.
    by_owner = {g.group: g for g in ws.funnel("Sales", by="owner").groups}
    assert set(by_owner) == {"Anna", "Boris", "(none)"}
    # Anna: D1 D2.  reached Request 2, Call 2, Estimate 1, Contract 1, Won 1; lost at Call 1.
    #   Request [1, 5]: median 3, p90 1 + 0.9 * 4 = 4.6.  Call [4].  Cycle D1 5 days.
    anna = by_owner["Anna"]
    assert [(s.reached, s.passed, s.lost, s.open) for s in anna.stages] == [
        (2, 2, 0, 0),
        (2, 1, 1, 0),
        (1, 1, 0, 0),
        (1, 1, 0, 0),
        (1, None, 0, 0),
    ]
    assert anna.stages[1].lost_reasons == {"Дорого": 1}
    assert [(s.median_days, s.p90_days) for s in anna.stages[:2]] == [(3.0, 4.6), (4.0, 4.0)]
    o = anna.overall
    assert (o.entered, o.won, o.lost, o.open, o.conversion, o.median_cycle_days) == (2, 1, 1, 0, 0.5, 5.0)
    # Boris: D3, furthest Estimate, open there.  (none): D4, in Request.
    assert [s.reached for s in by_owner["Boris"].stages] == [1, 1, 1, 0, 0]
    assert [s.open for s in by_owner["Boris"].stages] == [0, 0, 1, 0, 0]
    assert by_owner["Boris"].stages[0].median_days == 2.0
    assert [s.reached for s in by_owner["(none)"].stages] == [1, 0, 0, 0, 0]
    assert by_owner["(none)"].overall.open == 1

    def totals(by: str) -> dict[str, tuple[int, int, int, int]]:
        return {
            g.group: (g.overall.entered, g.overall.won, g.overall.lost, g.overall.open)
            for g in ws.funnel("Sales", by=by).groups  # type: ignore[arg-type]
        }

    # entered, won, lost, open per group
    assert totals("source") == {"web": (2, 1, 0, 1), "ads": (1, 0, 1, 0), "referral": (1, 0, 0, 1)}
    assert totals("segment") == {"b2b": (2, 1, 0, 1), "b2c": (1, 0, 0, 1), "(none)": (1, 0, 1, 0)}
    months = ws.funnel("Sales", by="month")
    assert [g.group for g in months.groups] == ["2026-01", "2026-02"]
    assert totals("month") == {"2026-01": (2, 1, 1, 0), "2026-02": (2, 0, 0, 2)}
    # Groups add up to the whole funnel, stage by stage, in both modes.
    for by in ("owner", "source", "segment", "month"):
        for strict in (False, True):
            r = ws.funnel("Sales", by=by, strict=strict)  # type: ignore[arg-type]
            for k, s in enumerate(r.stages):
                assert sum(g.stages[k].reached for g in r.groups) == s.reached
                assert sum(g.stages[k].lost for g in r.groups) == s.lost
                assert sum(g.stages[k].open for g in r.groups) == s.open
            assert sum(g.overall.entered for g in r.groups) == r.overall.entered
            check_model(ws, "Sales", ids, by=by, strict=strict)
    # A breakdown with a period keeps only the groups with deals in it.
    assert {g.group for g in ws.funnel("Sales", by="owner", start="2026-02-01").groups} == {"Boris", "(none)"}


def test_to_pandas_has_a_row_per_stage_and_group(ws: Workspace, deals_for: Build) -> None:
    deals_for(GROUPS)
    flat = ws.funnel("Sales").to_pandas()
    assert list(flat["name"]) == ["Request", "Call", "Estimate", "Contract", "Won"]
    assert list(flat["stage_order"]) == [0, 1, 2, 3, 4]
    grouped = ws.funnel("Sales", by="source").to_pandas()
    assert len(grouped) == 3 * 5
    assert set(grouped["source"]) == {"web", "ads", "referral"}
    assert grouped.groupby("name", sort=False)["reached"].sum().tolist() == [4, 3, 2, 1, 1]
