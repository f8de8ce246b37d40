"""The bottleneck: which stage, improved, brings the most won deals and revenue — and whether we are sure.

For each open stage k with conversion r_k (passed / decided, see :mod:`.deals`) and a benchmark b_k, the
*extra won deals* are N_k · max(b_k − r_k, 0) · W_k, where N_k is the number of deals decided at k and W_k the
product of the later stages' conversions (how many of the extra deals go on to win). *Extra revenue* multiplies
them by the average won deal (stages are ranked by extra won deals when no deal has an amount). Benchmarks:

- ``lift`` (default): the stage recovers a share (default 20%) of the deals it loses, b = r + lift·(1 − r). Every
  stage gets the same chance, so the stage that loses the most downstream value comes first.
- ``manager``: the best manager's empirical-Bayes shrunk rate at the stage (what this team already achieves).
- ``quarter``: the best of the last four calendar quarters (by entry) with at least 30 decided deals.
- ``target``: a rate per stage given by the user.

Uncertainty: every rate is drawn from its posterior (Jeffreys Beta(k + ½, n − k + ½); the manager benchmark from
its shrunk posterior; the average deal from a normal with its standard error), 20,000 times. The intervals are
the draws' 2.5% and 97.5% points. A stage is *named* the bottleneck only when it has the largest extra revenue in
at least ``certainty`` (default 95%) of the draws and its interval is above zero; otherwise none is named.

*Time bottlenecks*: per stage, the share of completed stays longer than the stage's SLA (Wilson interval); a
stage is flagged when even the interval's low end is above one half (most deals break the SLA there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np
import pandas as pd

from voronka.analytics.diagnosis._common import DRAWS, SEED, Result, interval, months_between
from voronka.analytics.diagnosis.deals import DealTable, stage_counts
from voronka.errors import InputError
from voronka.stats import shrink, wilson

Benchmark = Literal["lift", "manager", "quarter", "target"]
BENCHMARKS: tuple[str, ...] = ("lift", "manager", "quarter", "target")
MIN_QUARTER = 30


@dataclass
class StageImpact:
    stage: str
    position: int
    decided: int
    passed: int
    undecided: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    benchmark: float | None
    benchmark_from: str
    extra_won: float
    extra_won_low: float
    extra_won_high: float
    extra_revenue: float
    extra_revenue_low: float
    extra_revenue_high: float
    p_biggest: float
    lost_reasons: dict[str, int]


@dataclass
class StageTime:
    stage: str
    sla_days: float | None
    stays: int
    median_days: float | None
    p90_days: float | None
    over_sla: int
    share_over_sla: float | None
    share_ci_low: float | None
    share_ci_high: float | None
    flagged: bool


@dataclass
class BottleneckResult(Result):
    pipeline: str
    start: datetime | None
    end: datetime | None
    months: float
    benchmark: str
    certainty: float
    deals: int
    avg_won_amount: float | None
    stages: list[StageImpact]
    bottleneck: str | None
    time: list[StageTime]
    time_bottleneck: str | None
    definition: str = field(default=__doc__ or "")

    def ranked(self) -> list[StageImpact]:
        return sorted(self.stages, key=lambda s: -s.extra_revenue)

    def to_pandas(self) -> pd.DataFrame:
        frame = pd.DataFrame([s.__dict__ for s in self.stages])
        frame["lost_reasons"] = frame["lost_reasons"].map(lambda d: "; ".join(f"{k}: {v}" for k, v in d.items()))
        return frame


def find_bottleneck(
    table: DealTable,
    *,
    benchmark: Benchmark = "lift",
    lift: float = 0.2,
    targets: dict[str, float] | None = None,
    certainty: float = 0.95,
    confidence: float = 0.95,
    start: datetime | None = None,
    end: datetime | None = None,
) -> BottleneckResult:
    """Rank the stages of ``table`` (deals entered in ``[start, end)``) by the revenue their improvement brings."""
    _validate(benchmark, lift, targets, certainty, table)
    full = table
    table = table.between(start, end)
    f, n = table.frame, table.n_open
    if not len(f):
        raise InputError(f"No deals entered pipeline '{table.pipeline.name}' in the period: nothing to diagnose.")
    counts = stage_counts(f, n)
    rng = np.random.default_rng(SEED)
    k, d = counts["passed"].to_numpy(), counts["decided"].to_numpy()
    rates = rng.beta(k[:, None] + 0.5, (d - k)[:, None] + 0.5, size=(n, DRAWS))
    bench, sources = _benchmarks(benchmark, lift, targets or {}, table, full, rates, rng)
    downstream = np.vstack([np.prod(rates[j + 1 :], axis=0) if j + 1 < n else np.ones(DRAWS) for j in range(n)])
    extra = d[:, None] * np.maximum(bench - rates, 0.0) * downstream
    amount, amount_draws = _amount_draws(f, rng)
    revenue = extra * amount_draws
    # Without amounts the stages are ranked by extra won deals (revenue would be zero everywhere).
    ranking = revenue if amount is not None else extra
    biggest = np.bincount(np.argmax(ranking, axis=0), minlength=n) / DRAWS
    rows = []
    for j, st in enumerate(table.pipeline.open_stages):
        lo, hi = wilson(int(k[j]), int(d[j]), confidence) if d[j] else (None, None)
        won, won_lo, won_hi = interval(extra[j], confidence)
        rev, rev_lo, rev_hi = interval(revenue[j], confidence)
        point = np.nanmedian(bench[j]) if np.isfinite(bench[j]).any() else np.nan
        rows.append(
            StageImpact(
                stage=st.name,
                position=j,
                decided=int(d[j]),
                passed=int(k[j]),
                undecided=int(counts["undecided"][j]),
                rate=float(k[j] / d[j]) if d[j] else None,
                ci_low=lo,
                ci_high=hi,
                benchmark=None if np.isnan(point) else float(point),
                benchmark_from=sources[j],
                extra_won=won,
                extra_won_low=won_lo,
                extra_won_high=won_hi,
                extra_revenue=rev,
                extra_revenue_low=rev_lo,
                extra_revenue_high=rev_hi,
                p_biggest=float(biggest[j]),
                lost_reasons=_reasons(f, j),
            )
        )
    top = int(np.argmax(biggest))
    low = rows[top].extra_revenue_low if amount is not None else rows[top].extra_won_low
    named = rows[top].stage if biggest[top] >= certainty and low > 0 else None
    times = stage_times(table, confidence)
    flagged = [t for t in times if t.flagged]
    worst = max(flagged, key=lambda t: t.share_over_sla or 0).stage if flagged else None
    span_start = pd.Timestamp(start) if start else f["entry"].min()
    span_end = pd.Timestamp(end) if end else f["entry"].max()
    return BottleneckResult(
        pipeline=table.pipeline.name,
        start=start,
        end=end,
        months=round(months_between(span_start, span_end), 2),
        benchmark=benchmark if benchmark != "lift" else f"lift {lift:.0%}",
        certainty=certainty,
        deals=len(f),
        avg_won_amount=amount,
        stages=rows,
        bottleneck=named,
        time=times,
        time_bottleneck=worst,
    )


def _validate(
    benchmark: str, lift: float, targets: dict[str, float] | None, certainty: float, table: DealTable
) -> None:
    if benchmark not in BENCHMARKS:
        raise InputError(f"Unknown benchmark {benchmark!r}: use one of {', '.join(BENCHMARKS)}.")
    if not 0 < lift <= 1:
        raise InputError(f"--lift {lift!r} must be a share of the lost deals in (0, 1], e.g. 0.2.")
    if not 0.5 <= certainty < 1:
        raise InputError(f"--certainty {certainty!r} must be in [0.5, 1), e.g. 0.95.")
    names = {s.name for s in table.pipeline.open_stages}
    for name, rate in (targets or {}).items():
        if name not in names:
            raise InputError(f"Target for unknown stage {name!r}: the open stages are {', '.join(sorted(names))}.")
        if not 0 <= rate <= 1:
            raise InputError(f"Target {rate!r} for stage {name!r} must be a rate between 0 and 1, e.g. 0.5.")
    if benchmark == "target" and not targets:
        raise InputError("--benchmark target needs --target STAGE=RATE (one or more).")


def _benchmarks(
    kind: str,
    lift: float,
    targets: dict[str, float],
    table: DealTable,
    full: DealTable,
    rates: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[str]]:
    n = table.n_open
    names = [s.name for s in table.pipeline.open_stages]
    if kind == "lift":
        return rates + lift * (1 - rates), [f"recover {lift:.0%} of losses"] * n
    if kind == "target":
        bench = np.vstack([np.full(DRAWS, targets.get(nm, np.nan)) for nm in names])
        bench = np.where(np.isnan(bench), rates, bench)
        return bench, ["target" if nm in targets else "none" for nm in names]
    if kind == "manager":
        return _best_manager(table, rng)
    return _best_quarter(full, rates, rng)


def _best_manager(table: DealTable, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    f, n = table.frame, table.n_open
    bench, sources = np.empty((n, DRAWS)), []
    groups = list(f.groupby("owner"))
    for j in range(n):
        per = [stage_counts(g, n).iloc[j] for _, g in groups]
        k = np.array([p["passed"] for p in per], dtype=float)
        d = np.array([p["decided"] for p in per], dtype=float)
        s = shrink(k, d)
        best = int(np.argmax(np.where(d > 0, s.rate, -1)))
        a, b = k[best] + s.prior.alpha, d[best] - k[best] + s.prior.beta
        bench[j] = rng.beta(a, b, DRAWS)
        sources.append(f"best manager: {groups[best][0]}")
    return bench, sources


def _best_quarter(full: DealTable, rates: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    f, n = full.frame, full.n_open
    quarter = f["entry"].dt.tz_localize(None).dt.to_period("Q")
    recent = sorted(quarter.unique())[-4:]
    bench, sources = rates.copy(), ["none"] * n
    for j in range(n):
        best: tuple[float, str, int, int] | None = None
        for q in recent:
            c = stage_counts(f[quarter == q], n).iloc[j]
            if c["decided"] >= MIN_QUARTER and (best is None or c["passed"] / c["decided"] > best[0]):
                best = (c["passed"] / c["decided"], str(q), int(c["passed"]), int(c["decided"]))
        if best is not None:
            bench[j] = rng.beta(best[2] + 0.5, best[3] - best[2] + 0.5, DRAWS)
            sources[j] = f"best quarter: {best[1]}"
    return bench, sources


def _amount_draws(f: pd.DataFrame, rng: np.random.Generator) -> tuple[float | None, np.ndarray]:
    """The average won deal and draws of it; the average of all deals with an amount when none is won."""
    amounts = f.loc[f["status"] == "won", "amount"].dropna()
    if len(amounts) < 2:
        amounts = f["amount"].dropna()
    if len(amounts) < 2:
        return None, np.zeros(DRAWS)
    mean, se = float(amounts.mean()), float(amounts.std(ddof=1) / np.sqrt(len(amounts)))
    return mean, np.maximum(rng.normal(mean, se, DRAWS), 0.0)


def _reasons(f: pd.DataFrame, j: int) -> dict[str, int]:
    lost = f[(f["status"] == "lost") & (f["stop_pos"] == j)]
    return {str(k): int(v) for k, v in lost["reason"].value_counts().items()}


def stage_times(table: DealTable, confidence: float = 0.95) -> list[StageTime]:
    """Completed time in each open stage against its SLA."""
    f = table.frame
    out = []
    for j, st in enumerate(table.pipeline.open_stages):
        stays = f[f"stay_{j}"].dropna()
        m = len(stays)
        med = float(stays.median()) if m else None
        p90 = float(stays.quantile(0.9)) if m else None
        over, share, lo, hi = 0, None, None, None
        if st.sla_days and m:
            over = int((stays > st.sla_days).sum())
            share = over / m
            lo, hi = wilson(over, m, confidence)
        out.append(StageTime(st.name, st.sla_days, m, med, p90, over, share, lo, hi, bool(lo is not None and lo > 0.5)))
    return out
