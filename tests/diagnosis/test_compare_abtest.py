"""Period over period at equal age, mix/rate split, and A/B verdicts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from tests.cli.conftest import runner_for
from tests.diagnosis.conftest import synthetic
from voronka.analytics.diagnosis.abtest import run_abtest
from voronka.analytics.diagnosis.compare import compare_periods
from voronka.errors import InputError
from voronka.service import reports


def D(text: str) -> datetime:  # noqa: N802
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_no_month_of_the_demo_changes_for_real(demo) -> None:  # type: ignore[no-untyped-def]
    for month in ("2026-04", "2026-06", "2026-08", "2026-09"):
        r = reports.compare(demo, "Новые клиенты", month)
        assert r.significant == [], month
        assert r.total_change == pytest.approx(r.mix_effect + r.rate_effect, abs=1e-12)


def test_young_deals_are_left_out(demo) -> None:  # type: ignore[no-untyped-def]
    r = reports.compare(demo, "Новые клиенты", "2026-10", age_days=14)
    assert r.too_young_b > 0 and r.too_young_a == 0
    # Every deal kept has had 14 days; the latest event of the demo is just before 1 Nov.
    assert r.deals_b < 250


def test_a_real_drop_is_found_and_split_into_mix_and_rate() -> None:
    before = synthetic(1, rates=(0.8, 0.7, 0.5, 0.7), deals=3000, start="2026-01-01", days=90)
    after = synthetic(2, rates=(0.8, 0.7, 0.3, 0.7), deals=3000, start="2026-04-01", days=90)
    after.frame["deal_id"] += 10_000
    both = type(before)(before.pipeline, __import__("pandas").concat([before.frame, after.frame], ignore_index=True))
    r = compare_periods(
        both, (D("2026-01-01"), D("2026-04-01")), (D("2026-04-01"), D("2026-07-01")), age_days=60, now=D("2027-01-01")
    )
    by_stage = {x.stage: x for x in r.rows if x.group == "(all)"}
    assert by_stage["S2"].significant and by_stage["S2"].change < 0
    assert by_stage["S2"].ci_low < -0.2 + 0.05 and by_stage["S2"].ci_high > -0.2 - 0.05 or by_stage["S2"].ci_high < 0
    assert not by_stage["S0"].significant and not by_stage["S1"].significant
    # Sources are drawn alike in both periods: the change is in the rates, not the mix.
    assert abs(r.mix_effect) < abs(r.rate_effect)


def test_mix_effect_alone() -> None:
    t = synthetic(3, deals=4000, start="2026-01-01", days=180)
    f = t.frame
    # Source "a" converts at 100% of the way, the others as drawn; B has more of "a" only.
    a = f["source"] == "a"
    f.loc[a, "status"] = "won"
    f.loc[a, "max_pos"] = 4
    for k in range(5):
        f.loc[a, f"reach_{k}"] = f.loc[a, "entry"]
    first = f["entry"] < D("2026-04-01")
    drop = first & (f["source"] == "a") & (np.arange(len(f)) % 2 == 0)
    t.frame = f[~drop].reset_index(drop=True)
    r = compare_periods(
        t, (D("2026-01-01"), D("2026-04-01")), (D("2026-04-01"), D("2026-07-01")), age_days=30, now=D("2027-01-01")
    )
    assert r.mix_effect > 0.05
    assert abs(r.rate_effect) < 0.03


def test_compare_refuses_bad_periods(demo) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="YYYY-MM"):
        reports.compare(demo, 1, "October")
    with pytest.raises(InputError, match="empty"):
        reports.compare(demo, 1, "2030-01")
    with pytest.raises(InputError, match="breakdown"):
        reports.compare(demo, 1, "2026-09", by="colour")


def test_abtest_finds_the_planted_source_effect(demo) -> None:  # type: ignore[no-untyped-def]
    # In the demo, referrals ("Рекомендации") convert better at every stage.
    r = reports.abtest(demo, "Новые клиенты", by="source", variants=["Авито", "Рекомендации"])
    (v,) = r.verdicts
    assert v.outcome == "variant wins" and v.p_beats_control > 0.95
    assert v.loss_choosing_variant < 0.005 < v.loss_choosing_control


def test_abtest_inconclusive_says_how_many_more() -> None:
    t = synthetic(5, deals=300)
    r = run_abtest(t, by="segment")
    (v,) = r.verdicts
    assert v.outcome == "inconclusive"
    assert v.more_per_variant is not None and v.more_per_variant > 0
    assert "need about" in v.text["en"] and "нужно ещё около" in v.text["ru"]


def test_abtest_false_wins_stay_rare() -> None:
    runs = 500
    verdicts = [run_abtest(synthetic(s, deals=600), by="segment").verdicts[0] for s in range(runs)]
    wins = sum(v.outcome != "inconclusive" for v in verdicts)
    # Certainty 95% each way: on identical variants a winner is declared in about 10% of tests at most.
    assert wins / runs <= 0.12, wins


def test_abtest_by_custom_field_and_by_ranges() -> None:
    t = synthetic(6, deals=800)
    t.frame["custom"] = [{"script": "new" if i % 2 else "old"} for i in range(len(t.frame))]
    r = run_abtest(t, by="script", variants=["old", "new"])
    assert r.variants == ["old", "new"] and sum(r.deals.values()) == 800
    spans = {"q1": (D("2025-11-01"), D("2026-02-01")), "q2": (D("2026-02-01"), D("2026-05-01"))}
    r = run_abtest(t, ranges=spans)
    assert r.by == "entry date" and set(r.deals) == {"q1", "q2"}
    with pytest.raises(InputError, match="overlaps"):
        run_abtest(t, ranges={"a": (D("2026-01-01"), D("2026-03-01")), "b": (D("2026-02-01"), D("2026-04-01"))})
    with pytest.raises(InputError, match="No deal has the field"):
        run_abtest(t, by="colour")
    with pytest.raises(InputError, match="not found"):
        run_abtest(t, by="script", variants=["old", "newest"])


def test_cli_compare_and_abtest(demo_path: Path) -> None:
    run = runner_for(f"sqlite:///{demo_path}")
    data = json.loads(run("compare", "1", "--period", "2026-09", "--format", "json").output)
    assert data["period_b"][0].startswith("2026-09-01") and data["period_a"][0].startswith("2026-08-01")
    assert "mix effect" in run("compare", "1", "--period", "2026-09").output
    assert run("compare", "1", "--period", "2026-09", "--format", "csv").output.startswith("stage,group,")
    out = run("abtest", "1", "--variant", "source", "--only", "Авито", "--only", "Рекомендации", "--lang", "en").output
    assert "'Рекомендации' wins" in out
    data = json.loads(
        run(
            "abtest",
            "1",
            "--range",
            "a=2026-03-01:2026-05-01",
            "--range",
            "b=2026-05-01:2026-07-01",
            "--format",
            "json",
        ).output
    )
    assert data["variants"] == ["a", "b"]
    assert "NAME=FROM:TO" in run("abtest", "1", "--range", "nonsense", code=1).output
    assert "Error:" in run("abtest", "1", code=1).output
