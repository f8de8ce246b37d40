"""The diagnosis counts decided deals as documented, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from voronka.analytics.diagnosis.deals import load_deals, stage_counts

PIPE = {"name": "Sales", "stages": ["Request", "Estimate"], "reasons": ["Дорого"]}


def test_decided_and_undecided(ws, deals_for) -> None:  # type: ignore[no-untyped-def]
    deals_for(
        {
            "pipeline": PIPE,
            "deals": [
                {
                    "owner": "Anna",
                    "amount": "100",
                    "path": [("Request", "2026-01-01"), ("Estimate", "2026-01-02"), ("Won", "2026-01-03")],
                },
                {"owner": "Anna", "path": [("Request", "2026-01-01"), ("Lost", "2026-01-02", "Дорого")]},
                {
                    "owner": "Ivan",
                    "path": [("Request", "2026-01-01"), ("Estimate", "2026-01-02"), ("Lost", "2026-01-05", "Дорого")],
                },
                {"owner": "Ivan", "path": [("Request", "2026-01-01")]},
                {"owner": "Ivan", "path": [("Request", "2026-01-01"), ("Estimate", "2026-01-04")]},
            ],
        }
    )
    table = load_deals(ws, "Sales")
    counts = stage_counts(table.frame, table.n_open).set_index("stage")
    # Request: reached 5, passed 3 (two went on and one of them is open at Estimate), one still open here.
    assert counts.loc[0].to_dict() == {"reached": 5, "passed": 3, "decided": 4, "stopped": 1, "undecided": 1}
    # Estimate: reached 3, passed 1 (won), one lost there, one open there.
    assert counts.loc[1].to_dict() == {"reached": 3, "passed": 1, "decided": 2, "stopped": 1, "undecided": 1}
    r = ws.diagnose("Sales")
    rates = {s.stage: (s.passed, s.decided) for s in r.stages.stages}
    assert rates == {"Request": (3, 4), "Estimate": (1, 2)}
    assert r.bottleneck is None  # five deals prove nothing
    assert r.stages.avg_won_amount is None or r.stages.avg_won_amount == 100
