"""Benchmark: the diagnosis reports on the demo workspace at several sizes, against the stage funnel as baseline.

Run::

    .venv/bin/python bench/diagnose.py              # 3,000 and 30,000 demo deals
    .venv/bin/python bench/diagnose.py --sizes 3000

Each size builds the demo workspace once (seed 7, ``now`` 2026-11-01) in a temp SQLite file. Then, in this one
process, after one untimed warm-up of everything, each report runs ``--runs`` times and the median wall time is
printed, with its ratio to ``funnel`` (the stage funnel of the same pipeline, by owner): how much the statistics
cost on top of reading the log. No peer tool computes these reports, so the funnel is the yardstick. The bar of
issue 7: ``diagnose`` under 5 s on the demo workspace (the CLI adds its start-up, about 1-2 s).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import voronka
from voronka.service import reports
from voronka.service.demo import build_demo

NOW = datetime(2026, 11, 1, tzinfo=UTC)
PIPE = "Новые клиенты"


def timed(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _jobs(ws: voronka.Workspace) -> dict[str, Callable[[], object]]:
    return {
        "funnel": lambda: ws.funnel(PIPE, by="owner"),
        "diagnose": lambda: reports.diagnose(ws, PIPE),
        "compare": lambda: reports.compare(ws, PIPE, "2026-09", now=NOW),
        "abtest": lambda: reports.abtest(ws, PIPE, by="source"),
        "cohorts": lambda: reports.cohorts(ws, PIPE, now=NOW),
        "kpi": lambda: reports.kpi(ws, now=NOW),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[3000, 30000])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print(f"{'deals':>7} {'report':<10} {'median s':>9} {'× funnel':>9}")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            ws = voronka.open(f"sqlite:///{Path(tmp) / 'demo.db'}")
            build_demo(ws, seed=7, n_deals=size, now=NOW)
            jobs = _jobs(ws)
            for fn in jobs.values():
                fn()
            base = timed(jobs["funnel"], args.runs)
            for name, fn in jobs.items():
                t = base if name == "funnel" else timed(fn, args.runs)
                print(f"{size:>7} {name:<10} {t:>9.3f} {t / base:>9.1f}")
            ws.close()


if __name__ == "__main__":
    main()
