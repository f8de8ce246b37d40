"""Benchmark: the forecast (fit + 10,000-path Monte Carlo, 3 months) with 100,000 open deals.

Run::

    .venv/bin/python bench/forecast.py             # 100,000 open deals, 10,000 paths
    .venv/bin/python bench/forecast.py --small     # 10,000 open deals: a quick check

The history is generated in memory (deterministic): deals arrive over 180 days into the first of four open
stages and walk the stages with exponential stays, moves back, wins and losses, so that about ``--open`` deals
are open at the end. Each engine runs in a fresh process (peak memory is that process's peak resident set):

- ``voronka``: ``run_forecast`` — fit the flow model, solve the chain, simulate every path, summarise;
- ``per-deal``: the straightforward Monte Carlo a forecast is usually written as: every open deal walked day by
  day through the same fitted chain, for each path. It is run for ``--peer-paths`` paths and its time scaled to
  the full number of paths (stated as such in the table).

Both forecasts' mean revenue and wins in month 1 must agree within Monte Carlo error. The exit status is
non-zero when they do not, or when Voronka takes ``--limit`` seconds or more.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

DAY_US = 86_400_000_000
T0 = 1_767_225_600_000_000  # 2026-01-01 UTC
DAYS = 180
HAZARD = (0.5, 0.15, 0.08, 0.05)
DEST = ((0, 0.8, 0, 0, 0, 0.2), (0.05, 0, 0.65, 0, 0, 0.3), (0, 0.1, 0, 0.5, 0.05, 0.35), (0, 0, 0.1, 0, 0.6, 0.3))


def history(open_target: int, seed: int = 7) -> Any:
    """A FlowHistory whose log leaves about ``open_target`` deals open on day DAYS (vectorised walk)."""
    from voronka.analytics.forecast.history import FlowHistory

    rng = np.random.default_rng(seed)
    count = int(open_target * 3.6)  # about 28% of the deals are still open at the end with these rates
    start = np.sort(DAYS * rng.power(3.0, count))  # more arrivals lately: a growing business
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    alive = np.arange(count)
    cat = np.zeros(count, dtype=np.int64)
    t = start.copy()
    rows.append((alive, cat.copy(), t.copy()))
    cum = np.cumsum(np.array(DEST), axis=1)
    for _ in range(40):
        wait = rng.exponential(1 / np.array(HAZARD)[cat])
        t_next = t + wait
        go = t_next < DAYS
        alive, cat, t = alive[go], cat[go], t_next[go]
        dest = (rng.random(len(alive))[:, None] > cum[cat]).sum(axis=1)
        rows.append((alive, dest, t))
        keep = dest < 4
        alive, cat, t = alive[keep], dest[keep], t[keep]
        if not len(alive):
            break
    deal = np.concatenate([r[0] for r in rows])
    cats = np.concatenate([r[1] for r in rows])
    at = np.concatenate([r[2] for r in rows])
    order = np.lexsort((at, deal))
    amounts = 100_000 * rng.lognormal(0, 0.6, count)
    return FlowHistory(
        pipeline="Bench",
        stages=("Lead", "Qualified", "Proposal", "Negotiation"),
        move_deal=deal[order].astype(np.int64),
        move_cat=cats[order].astype(np.int64),
        move_at=T0 + (at[order] * DAY_US).astype(np.int64),
        deal_amount=amounts,
        currency="RUB",
    )


def run_voronka(open_target: int, paths: int, out: Any) -> None:
    from voronka.analytics.forecast.forecast import ForecastQuery, run_forecast
    from voronka.analytics.forecast.history import open_deals

    h = history(open_target)
    as_of = T0 + DAYS * DAY_US
    n_open = len(open_deals(h, as_of).index)
    started = time.perf_counter()
    r = run_forecast(h, as_of, ForecastQuery(months=3, paths=paths))
    took = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # For the check against the peer: the chain's exact expected wins in month 1 from today's open deals alone.
    from voronka.analytics.forecast.chain import outlook
    from voronka.analytics.forecast.model import fit, mean_params
    from voronka.analytics.forecast.montecarlo import month_bounds

    model = fit(h, as_of)
    days = int(round((month_bounds(as_of, 1)[1] - as_of) / DAY_US))
    now = open_deals(h, as_of)
    v = outlook(mean_params(model), (days,)).at[0][0]
    exact = float(v[now.stage, np.minimum(now.age_days.astype(np.int64), model.ages - 1), model.n].sum())
    out.send(
        {
            "seconds": took,
            "peak_mb": peak,
            "open": n_open,
            "revenue": r.months[0].revenue.mean,
            "won": r.months[0].won.mean,
            "model": r.model,
            "exact_open_won": exact,
        }
    )


def run_per_deal(open_target: int, paths: int, peer_paths: int, out: Any) -> None:
    """Every open deal walked day by day through the fitted chain (posterior-mean parameters), per path."""
    from voronka.analytics.forecast.history import open_deals
    from voronka.analytics.forecast.model import fit, mean_params
    from voronka.analytics.forecast.montecarlo import month_bounds

    h = history(open_target)
    as_of = T0 + DAYS * DAY_US
    started = time.perf_counter()
    model = fit(h, as_of)
    p = mean_params(model)
    q, cum = p.q[0], np.cumsum(p.d[0], axis=-1)
    now = open_deals(h, as_of)
    amount = h.deal_amount[now.index]
    days = int(round((month_bounds(as_of, 1)[1] - as_of) / DAY_US))
    rng = np.random.default_rng(1)
    won, revenue = [], []
    n = model.n
    for _ in range(peer_paths):
        s = now.stage.copy()
        a = np.minimum(now.age_days.astype(np.int64), model.ages - 1)
        for _ in range(days):
            live = np.flatnonzero(s < n)
            si, ai = s[live], a[live]
            leave = rng.random(len(live)) < q[si, ai]
            dest = (rng.random(len(live))[:, None] > cum[si, ai]).sum(axis=1)
            s[live] = np.where(leave, dest, si)
            a[live] = np.where(leave, 0, np.minimum(ai + 1, model.ages - 1))
        won.append(int((s == n).sum()))
        revenue.append(float(amount[s == n].sum()))
    took = (time.perf_counter() - started) * paths / peer_paths
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.send(
        {
            "seconds": took,
            "peak_mb": peak,
            "won_open_only": float(np.mean(won)),
            "revenue_open_only": float(np.mean(revenue)),
        }
    )


def in_process(target: Any, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(*args, child))
    proc.start()
    result = parent.recv()
    proc.join()
    return result


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--open", type=int, default=100_000)
    ap.add_argument("--paths", type=int, default=10_000)
    ap.add_argument("--peer-paths", type=int, default=5)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--limit", type=float, default=10.0)
    args = ap.parse_args()
    if args.small:
        args.open = 10_000
    print(f"load: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores")
    v = in_process(run_voronka, args.open, args.paths)
    peer = in_process(run_per_deal, args.open, args.paths, args.peer_paths)
    print(f"{v['open']:,} open deals, {args.paths:,} paths, 3 months; model: {v['model']}")
    print("| engine | seconds | ratio to voronka | peak memory MB |")
    print("|---|---|---|---|")
    print(f"| voronka (fit + chain + {args.paths:,} paths) | {v['seconds']:.2f} | 1.00× | {v['peak_mb']:.0f} |")
    print(
        f"| per-deal daily walk, month 1 only, open deals only ({args.peer_paths} paths timed, scaled to "
        f"{args.paths:,}) | {peer['seconds']:.1f} | {peer['seconds'] / v['seconds']:.0f}× | {peer['peak_mb']:.0f} |"
    )
    print(
        f"month 1: voronka won {v['won']:,.0f} (open + new deals), revenue {v['revenue']:,.0f}; "
        f"open deals only: chain exact {v['exact_open_won']:,.1f}, per-deal walk {peer['won_open_only']:,.1f}"
    )
    # The walk's mean over a few paths: its spread is at most sqrt(wins) / sqrt(paths) per the binomial.
    tolerance = 4 * np.sqrt(max(v["exact_open_won"], 1) / args.peer_paths) + 1
    agree = abs(peer["won_open_only"] - v["exact_open_won"]) <= tolerance
    ok = v["seconds"] < args.limit and agree
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
