"""Managers on a funnel plot: each manager's conversion at each stage against their number of decided deals.

*Centre*: the median of the managers' rates at the stage (the team's typical manager; a median, so that one
outlier does not drag the centre towards itself). *Control limits*: the binomial quantiles around the centre for
each sample size, at 95% and 99.8% — a manager inside them differs from the centre by no more than chance allows.
*Flagged*: outside the 99.8% limits (the classic funnel-plot rule, Spiegelhalter 2005) *and* the exact binomial
test of "this manager's rate is the centre" significant after Benjamini–Hochberg control of the false discovery
rate (default 5%) over all managers × stages; low or high by the direction. Both, because the centre is itself
estimated from the same few managers.
*Shrunk rate*: the empirical-Bayes (beta-binomial) estimate, a better guess of the manager's true rate than the
raw one on a small sample.

*Speed to lead*: hours from the deal's entry to its first call done; per manager the median and the 90th
percentile. A manager is flagged *slow* when a one-sided Mann–Whitney test says their times are longer than the
rest of the team's, significant after Benjamini–Hochberg over the managers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from voronka.analytics.diagnosis._common import Result
from voronka.analytics.diagnosis.deals import DealTable, stage_counts
from voronka.stats import benjamini_hochberg, binomial_test, shrink, wilson

MIN_DECIDED = 10  # a manager with fewer decided deals at a stage is shown but not tested
MIN_CALLS = 10


@dataclass
class ManagerStage:
    manager: str
    stage: str
    position: int
    decided: int
    passed: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    shrunk: float | None
    shrunk_low: float | None
    shrunk_high: float | None
    centre: float | None
    limit95_low: float | None
    limit95_high: float | None
    limit998_low: float | None
    limit998_high: float | None
    p_value: float | None
    q_value: float | None
    flag: str | None  # "low", "high" or None


@dataclass
class ManagerSpeed:
    manager: str
    deals_with_call: int
    median_hours: float | None
    p90_hours: float | None
    p_value: float | None
    q_value: float | None
    slow: bool


@dataclass
class ManagersResult(Result):
    pipeline: str
    fdr: float
    rows: list[ManagerStage]
    speed: list[ManagerSpeed]
    team_median_hours: float | None
    definition: str = field(default=__doc__ or "")

    @property
    def flagged(self) -> list[ManagerStage]:
        return [r for r in self.rows if r.flag]

    @property
    def slow(self) -> list[ManagerSpeed]:
        return [s for s in self.speed if s.slow]

    def to_pandas(self) -> pd.DataFrame:
        return pd.DataFrame([r.__dict__ for r in self.rows])


def _limits(centre: float, n: int, level: float) -> tuple[float, float]:
    from scipy import stats as sps

    tail = (1 - level) / 2
    return float(sps.binom.ppf(tail, n, centre) / n), float(sps.binom.isf(tail, n, centre) / n)


def managers_report(table: DealTable, *, fdr: float = 0.05, confidence: float = 0.95) -> ManagersResult:
    """Each manager at each stage on a funnel plot, flagged only when the difference survives BH control."""
    f, n = table.frame, table.n_open
    groups = [(name, stage_counts(g, n)) for name, g in f.groupby("owner", sort=True)]
    rows: list[ManagerStage] = []
    for j, st in enumerate(table.pipeline.open_stages):
        k = np.array([c.iloc[j]["passed"] for _, c in groups], dtype=float)
        d = np.array([c.iloc[j]["decided"] for _, c in groups], dtype=float)
        tested = d >= MIN_DECIDED
        centre = float(np.median(k[tested] / d[tested])) if tested.sum() >= 2 else None
        s = shrink(k, d, confidence) if (d > 0).sum() >= 2 else None
        for i, (name, _) in enumerate(groups):
            ki, di = int(k[i]), int(d[i])
            lo, hi = wilson(ki, di, confidence) if di else (None, None)
            l95 = _limits(centre, di, 0.95) if centre is not None and di else (None, None)
            l998 = _limits(centre, di, 0.998) if centre is not None and di else (None, None)
            p = binomial_test(ki, di, centre) if centre is not None and tested[i] else None
            rows.append(
                ManagerStage(
                    manager=str(name),
                    stage=st.name,
                    position=j,
                    decided=di,
                    passed=ki,
                    rate=ki / di if di else None,
                    ci_low=lo,
                    ci_high=hi,
                    shrunk=float(s.rate[i]) if s is not None and di else None,
                    shrunk_low=float(s.low[i]) if s is not None and di else None,
                    shrunk_high=float(s.high[i]) if s is not None and di else None,
                    centre=centre,
                    limit95_low=l95[0],
                    limit95_high=l95[1],
                    limit998_low=l998[0],
                    limit998_high=l998[1],
                    p_value=p,
                    q_value=None,
                    flag=None,
                )
            )
    pvals = np.array([np.nan if r.p_value is None else r.p_value for r in rows])
    reject, adj = benjamini_hochberg(pvals, fdr)
    for r, rej, q in zip(rows, reject, adj, strict=True):
        r.q_value = None if np.isnan(q) else float(q)
        if rej and r.rate is not None and r.limit998_low is not None and r.limit998_high is not None:
            if r.rate < r.limit998_low:
                r.flag = "low"
            elif r.rate > r.limit998_high:
                r.flag = "high"
    speed, team = speed_to_lead(f, fdr)
    return ManagersResult(table.pipeline.name, fdr, rows, speed, team)


def speed_to_lead(f: pd.DataFrame, fdr: float = 0.05) -> tuple[list[ManagerSpeed], float | None]:
    """Hours from entry to the first call per manager, and who is slower than the rest of the team."""
    from scipy import stats as sps

    hours = (f["first_call"] - f["entry"]).dt.total_seconds() / 3600
    data = pd.DataFrame({"owner": f["owner"], "hours": hours}).dropna()
    data = data[data["hours"] >= 0]
    if data.empty:
        return [], None
    out: list[ManagerSpeed] = []
    for name, g in data.groupby("owner", sort=True):
        rest = data.loc[data["owner"] != name, "hours"]
        p = None
        if len(g) >= MIN_CALLS and len(rest) >= MIN_CALLS:
            p = float(sps.mannwhitneyu(g["hours"], rest, alternative="greater").pvalue)
        out.append(
            ManagerSpeed(str(name), len(g), float(g["hours"].median()), float(g["hours"].quantile(0.9)), p, None, False)
        )
    reject, adj = benjamini_hochberg([np.nan if s.p_value is None else s.p_value for s in out], fdr)
    for s, rej, q in zip(out, reject, adj, strict=True):
        s.q_value = None if np.isnan(q) else float(q)
        s.slow = bool(rej)
    return out, float(data["hours"].median())
