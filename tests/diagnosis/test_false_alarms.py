"""On data with no effect planted, flags stay at their nominal rate; planted effects are found."""

from __future__ import annotations

from tests.diagnosis.conftest import synthetic
from voronka.analytics.diagnosis.bottleneck import find_bottleneck
from voronka.analytics.diagnosis.managers import managers_report

SEEDS = range(40)


def test_no_bottleneck_named_when_no_stage_is_worse() -> None:
    named = sum(find_bottleneck(synthetic(seed)).bottleneck is not None for seed in SEEDS)
    # Certainty 95%: at most 5% of the runs may name a stage; allow the binomial noise of 40 runs.
    assert named <= 5, named


def test_no_manager_flagged_when_managers_are_alike() -> None:
    runs = [managers_report(synthetic(seed)) for seed in SEEDS]
    any_flag = sum(bool(r.flagged) for r in runs)
    any_slow = sum(bool(r.slow) for r in runs)
    # FDR 5% over the family: a dataset with any false flag should be rarer than 5% (plus noise of 40 runs).
    assert any_flag <= 4, any_flag
    assert any_slow <= 4, any_slow


def test_planted_bottleneck_and_manager_are_found() -> None:
    found = 0
    for seed in range(10):
        t = synthetic(seed, rates=(0.8, 0.8, 0.4, 0.8), owner_effect={2: (0, 0.55)})
        b = find_bottleneck(t)
        m = managers_report(t)
        found += b.bottleneck == "S2" and [(r.manager, r.stage) for r in m.flagged] == [("M2", "S0")]
    assert found >= 9


def test_no_change_found_between_periods_with_equal_rates() -> None:
    import pandas as pd

    from tests.diagnosis.test_compare_abtest import D
    from voronka.analytics.diagnosis.compare import compare_periods

    found = 0
    runs = 40
    for seed in range(runs):
        a = synthetic(2 * seed, deals=800, start="2026-01-01", days=90)
        b = synthetic(2 * seed + 1, deals=800, start="2026-04-01", days=90)
        b.frame["deal_id"] += 10_000
        both = type(a)(a.pipeline, pd.concat([a.frame, b.frame], ignore_index=True))
        r = compare_periods(
            both,
            (D("2026-01-01"), D("2026-04-01")),
            (D("2026-04-01"), D("2026-07-01")),
            age_days=60,
            now=D("2027-01-01"),
        )
        found += bool(r.significant)
    # BH at 5% over 5 stages × 4 groups: a dataset with any "real" change should be rare (nominal 5%).
    assert found <= 5, found


def test_without_amounts_the_bottleneck_ranks_by_won_deals() -> None:
    t = synthetic(7, rates=(0.8, 0.8, 0.4, 0.8))
    t.frame["amount"] = float("nan")
    b = find_bottleneck(t)
    assert b.avg_won_amount is None and b.bottleneck == "S2"
    assert all(s.extra_revenue == 0 for s in b.stages)
