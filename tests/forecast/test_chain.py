"""The daily chain: closed-form absorption against hand-computed values and against a direct simulation."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tests.forecast.synthetic import TWO_STAGES, at_day, generate
from voronka.analytics.forecast.chain import absorption, outlook
from voronka.analytics.forecast.model import Params, fit, mean_params


def constant(q: list[float], d: list[list[float]], ages: int = 1) -> Params:
    """Parameters with the same exit probability and destinations at every age."""
    qa = np.repeat(np.array(q, dtype=float)[None, :, None], ages, axis=2)
    da = np.repeat(np.array(d, dtype=float)[None, :, None, :], ages, axis=2)
    n = len(q)
    return Params(q=qa, d=da, entry=np.full((1, n), 1 / n), rate=np.ones(1))


def test_one_stage_wins_in_proportion() -> None:
    x = absorption(constant([0.3], [[0, 0.25, 0.75]]))
    assert np.allclose(x[0, 0, 0], [0.25, 0.75])


def test_two_stages_with_a_move_back_by_hand() -> None:
    # y0 = 0.6 y1; y1 = 0.55 + 0.15 y0  =>  y1 = 0.55 / 0.91, y0 = 0.6 y1
    p = constant([0.2, 0.1], [[0, 0.6, 0, 0.4], [0.15, 0, 0.55, 0.3]], ages=5)
    x = absorption(p)[0, :, :, 0]
    y1 = 0.55 / (1 - 0.6 * 0.15)
    assert np.allclose(x[:, 0], [0.6 * y1, y1])
    assert np.allclose(x, x[:, :1])  # no age effect when nothing depends on age


def test_a_stage_never_left_ends_neither_way() -> None:
    p = constant([0.5, 0.0], [[0, 0.5, 0.5, 0], [0, 0, 1, 0]])
    x = absorption(p)[0, :, 0]
    assert np.allclose(x[1], [0, 0])
    assert np.allclose(x[0], [0.5, 0])  # half are won, half go to stage 1 and stay there forever


def test_outlook_tends_to_absorption() -> None:
    p = constant([0.2, 0.1], [[0, 0.6, 0, 0.4], [0.15, 0, 0.55, 0.3]], ages=3)
    v = outlook(p, (2000,)).at[0]
    assert np.allclose(v[..., 2:], absorption(p), atol=1e-9)


@given(
    q=st.lists(st.floats(0.01, 1), min_size=3, max_size=3),
    w=st.lists(st.floats(0.01, 1), min_size=15, max_size=15),
)
def test_outlook_is_a_distribution_and_won_only_grows(q: list[float], w: list[float]) -> None:
    d = np.array(w).reshape(3, 5)
    d[np.arange(3), np.arange(3)] = 0
    d /= d.sum(axis=1, keepdims=True)
    p = constant(q, d.tolist(), ages=4)
    view = outlook(p, (5, 30, 60))
    for v in view.at:
        assert np.allclose(v.sum(axis=-1), 1)
        assert (v >= -1e-12).all()
    assert (view.at[0][..., 3] <= view.at[1][..., 3] + 1e-12).all()
    assert (view.at[1][..., 3] <= view.at[2][..., 3] + 1e-12).all()


def simulate_deals(p: Params, stage: int, age: int, deals: int, days: int, seed: int) -> np.ndarray:
    """Walk ``deals`` deals through the daily chain one day at a time (written independently of chain.py);
    the share that ends in each category."""
    rng = np.random.default_rng(seed)
    q, d = p.q[0], p.d[0]
    n, ages = q.shape
    s = np.full(deals, stage)
    a = np.full(deals, age)
    for _ in range(days):
        live = s < n
        si, ai = s[live], a[live]
        leave = rng.random(live.sum()) < q[si, ai]
        cum = np.cumsum(d[si, ai], axis=1)
        dest = (rng.random(live.sum())[:, None] > cum).sum(axis=1)
        s[live] = np.where(leave, dest, si)
        a[live] = np.where(leave, 0, np.minimum(ai + 1, ages - 1))
    return np.bincount(s, minlength=n + 2)[n:] / deals


def test_fitted_chain_absorption_equals_simulation_and_truth() -> None:
    h = generate(TWO_STAGES, days=400, seed=1)
    model = fit(h, at_day(400))
    p = mean_params(model)
    x = absorption(p)[0]
    for stage, age in ((0, 0), (1, 0), (1, 5)):
        share = simulate_deals(p, stage, age, deals=40_000, days=400, seed=stage + age)
        se = np.sqrt(x[stage, age, 0] * (1 - x[stage, age, 0]) / 40_000)
        assert abs(share[0] - x[stage, age, 0]) < 4 * se + 1e-3, (stage, age, share, x[stage, age])
    y1 = 0.55 / (1 - 0.6 * 0.15)
    assert abs(x[0, 0, 0] - 0.6 * y1) < 0.03  # the fitted chain is near the true process
    assert abs(x[1, 0, 0] - y1) < 0.03
