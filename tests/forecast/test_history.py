"""The log as the flow model reads it: categories, stays, open deals, entries, wins, and the cut at a past time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tests.scenarios import T
from voronka.analytics.forecast.history import DAY_US, entries, open_deals, stays, wins
from voronka.service.forecast import load_history
from voronka.service.workspace import Workspace
from voronka.store.types import to_micros

SCENARIO = {
    "pipelines": [
        {"name": "Sales", "stages": ["Request", "Call", "Contract"], "reasons": ["No budget"]},
        {"name": "Other", "stages": ["Inbox"]},
    ],
    "deals": [
        # back from Contract to Call, then won
        {
            "amount": "100",
            "path": [
                ("Request", "2026-01-01"),
                ("Contract", "2026-01-03"),
                ("Call", "2026-01-04"),
                ("Won", "2026-01-10"),
            ],
        },
        # leaves for another pipeline, comes back, still open
        {
            "amount": "200",
            "path": [("Request", "2026-01-02"), (("Other", "Inbox"), "2026-01-05"), (("Sales", "Call"), "2026-01-07")],
        },
        # lost
        {"path": [("Request", "2026-01-03"), ("Lost", "2026-01-04", "No budget")]},
    ],
}


def test_the_log_as_the_model_reads_it(ws: Workspace, deals_for: Callable[[dict[str, Any]], list[int]]) -> None:
    deals_for(SCENARIO)
    h = load_history(ws, "Sales")
    assert h.stages == ("Request", "Call", "Contract") and h.currency == "RUB"
    now = to_micros(T("2026-01-20"))
    st = stays(h, now)
    # (stage, days, exited, destination): 0..2 open stages, 3 won, 4 closed (lost or left the pipeline)
    got = sorted(
        zip(st.stage.tolist(), np.round(st.days, 3).tolist(), st.exited.tolist(), st.dest.tolist(), strict=True)
    )
    assert got == [
        (0, 1.0, True, 4),  # deal 3: Request → lost
        (0, 2.0, True, 2),  # deal 1: Request → Contract (a skip)
        (0, 3.0, True, 4),  # deal 2: Request → another pipeline
        (1, 6.0, True, 3),  # deal 1: Call → won
        (1, 13.0, False, -1),  # deal 2: back in Call since Jan 7, still there
        (2, 1.0, True, 1),  # deal 1: Contract → back to Call
    ]
    op = open_deals(h, now)
    assert op.stage.tolist() == [1] and op.age_days.tolist() == [13.0]
    assert h.deal_amount[op.index].tolist() == [200.0]
    assert len(entries(h, to_micros(T("2026-01-01")), now)[0]) == 3
    assert h.deal_amount[wins(h, 0, now)].tolist() == [100.0]
    # As of Jan 5, 12:00 deal 2 has just left: closed, not open; deal 1 is in Call since Jan 4.
    cut = to_micros(T("2026-01-05T12:00"))
    early = open_deals(h.before(cut), cut)
    assert early.stage.tolist() == [1] and early.age_days.tolist() == [1.5]
    assert (h.before(cut).move_at < cut).all() and to_micros(T("2026-01-10")) // DAY_US > cut // DAY_US
