"""The forecast on histories whose future is known by construction."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.forecast.synthetic import T0, TWO_STAGES, at_day, generate
from voronka.analytics.forecast.forecast import ForecastQuery, deal_p_win, run_forecast
from voronka.analytics.forecast.history import DAY_US, FlowHistory, open_deals, wins
from voronka.analytics.forecast.model import fit
from voronka.analytics.forecast.montecarlo import month_bounds, simulate
from voronka.errors import InputError


def clockwork(deals: int = 400, every: float = 0.5, after: float = 10.0) -> FlowHistory:
    """Deal i enters stage 0 at day i × ``every`` and is won exactly ``after`` days later; amounts 1000."""
    start = np.arange(deals) * every
    deal = np.repeat(np.arange(deals), 2)
    cat = np.tile([0, 1], deals)  # one open stage: won is category 1
    at = np.stack([start, start + after], axis=1).ravel()
    return FlowHistory(
        pipeline="Clockwork",
        stages=("Only",),
        move_deal=deal,
        move_cat=cat,
        move_at=T0 + (at * DAY_US).astype(np.int64),
        deal_amount=np.full(deals, 1000.0),
        currency="RUB",
        groups={"owner": (np.arange(deals) % 2, ["A", "B"])},
    )


def test_every_deal_wins_after_ten_days_and_the_forecast_says_so() -> None:
    h = clockwork()
    as_of = at_day(200)
    model = fit(h, as_of)
    assert model.kind == "age"
    open_now = open_deals(h.before(as_of), as_of)
    assert len(open_now.index) == 20  # entered in the last 10 days
    assert deal_p_win(model, open_now.stage, open_now.age_days).min() > 0.99
    r = run_forecast(h, as_of, ForecastQuery(months=2, paths=2000))
    m1, m2 = r.months
    # Month 1 (31 days): the 20 open deals, plus the 2/day arriving in its first 21 days.
    assert m1.won.p10 >= 20
    assert abs(m1.won.mean - (20 + 2 * 21)) <= 4
    assert abs(m2.won.mean - 2 * 31) <= 5
    assert m1.revenue.mean == pytest.approx(1000 * m1.won.mean)
    assert abs(m1.stages["Only"].mean - 20) <= 3  # the last 10 days of arrivals sit in the stage
    assert r.stage_odds[0].p_win_new > 0.99


def test_open_deals_alone_all_win_within_the_month() -> None:
    h = clockwork()
    as_of = at_day(200)
    model = dataclasses.replace(fit(h, as_of), entry_deals_=np.zeros(0, np.int64))
    model = dataclasses.replace(model, inflow_days_=1e9)  # no inflow: only today's deals
    s = simulate(model, h, months=1, paths=1000)
    assert np.all(s.won[:, 0, 0] == 20)
    assert np.all(s.revenue[:, 0, 0] == 20_000)


def test_thin_history_falls_back_to_the_simple_model_and_says_so() -> None:
    h = clockwork(deals=40, every=3)
    r = run_forecast(h, at_day(125), ForecastQuery(paths=500))
    assert r.model.startswith("simple")
    assert any("SIMPLE model" in note for note in r.notes)


def test_too_thin_history_is_refused_with_the_count() -> None:
    h = clockwork(deals=8, every=3)
    with pytest.raises(InputError, match=r"too little history to forecast: \d+ finished stays"):
        run_forecast(h, at_day(40), ForecastQuery(paths=500))


def test_breakdown_adds_up_to_the_whole() -> None:
    h = generate(TWO_STAGES, days=300, seed=3)
    r = run_forecast(h, at_day(300), ForecastQuery(paths=4000, by="owner"))
    assert [g.group for g in r.groups][0] == "all"
    parts = sum(g.months[0].revenue.mean for g in r.groups[1:])
    assert parts == pytest.approx(r.months[0].revenue.mean, rel=0.05)
    assert sum(g.open_deals for g in r.groups[1:]) == r.groups[0].open_deals


@pytest.mark.slow
def test_the_80_percent_interval_covers_the_truth_about_80_percent_of_the_time() -> None:
    """150 histories of a process the model describes exactly; the truth is the next month's revenue and wins."""
    inside_rev, inside_won = [], []
    for rep in range(150):
        h = generate(TWO_STAGES, days=245, seed=1000 + rep)
        origin = at_day(200)
        model = fit(h, origin)
        s = simulate(model, h, months=1, paths=1000, draws=64, seed=rep)
        a, b = month_bounds(origin, 1)
        won = wins(h, a, b)
        assert b <= at_day(245)
        rev, cnt = s.revenue[:, 0, 0], s.won[:, 0, 0]
        actual = h.deal_amount[won].sum()
        inside_rev.append(np.quantile(rev, 0.1) <= actual <= np.quantile(rev, 0.9))
        inside_won.append(np.quantile(cnt, 0.1) <= len(won) <= np.quantile(cnt, 0.9))
    assert 0.7 <= np.mean(inside_rev) <= 0.9, np.mean(inside_rev)
    assert 0.7 <= np.mean(inside_won) <= 0.95, np.mean(inside_won)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), months=st.integers(1, 3), cut=st.floats(60, 150))
def test_forecast_invariants(seed: int, months: int, cut: float) -> None:
    h = generate(TWO_STAGES, days=150, seed=seed)
    r = run_forecast(h, at_day(cut), ForecastQuery(months=months, paths=300, seed=seed))
    assert len(r.months) == months
    for m in r.months:
        for s in (m.revenue, m.won, m.new_deals, *m.stages.values()):
            assert 0 <= s.p10 <= s.p25 <= s.p50 <= s.p75 <= s.p90
            assert s.p10 <= s.mean <= s.p90 or s.p10 == s.p90
    for odds in r.stage_odds:
        assert 0 <= odds.p_win_30d <= 1


def test_each_group_forecasts_with_its_own_rates() -> None:
    """Owner A's deals are all won after 10 days, owner B's all lost: by owner, A wins and B does not."""
    h = clockwork()
    owner = np.arange(h.n_deals) % 2  # 0: A, 1: B
    cat = np.where((h.move_cat == 1) & (owner[h.move_deal] == 1), 2, h.move_cat)  # B's deals end lost
    h = dataclasses.replace(h, move_cat=cat, groups={"owner": (owner, ["A", "B"])})
    r = run_forecast(h, at_day(200), ForecastQuery(months=1, paths=2000, by="owner"))
    a, b = (next(g for g in r.groups if g.group == name) for name in ("A", "B"))
    assert a.open_deals == b.open_deals == 10
    assert a.months[0].won.p10 >= 10  # its 10 open deals, plus new ones
    # B's own 190 losses outweigh the shrinkage towards the pipeline (20 exits' weight): a few per cent remain.
    assert b.months[0].won.mean <= 0.1 * a.months[0].won.mean
    assert r.months[0].won.mean == pytest.approx(a.months[0].won.mean + b.months[0].won.mean, rel=0.1)
