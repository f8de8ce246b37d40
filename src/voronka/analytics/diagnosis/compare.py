"""Is the change real? Period over period per stage, comparing cohorts of equal age.

Two cohorts: the deals that entered in period A and those that entered in period B. Each deal is looked at
``age`` days after it entered (default 30): it *reached* stage k by then if it first got to k (implied counting)
no later than entry + age, and *passed* it if it reached k + 1 by then. Deals younger than ``age`` at ``now`` are
left out of both cohorts (and counted), so a young cohort is never compared with an old one that has had more
time to convert. Conversion at stage k = passed / reached; end to end = won by ``age`` / entered.

For every stage (and for every stage within each value of the breakdown field) the change B − A gets the
Newcombe 95% interval and a p-value: Fisher's exact test when a cell of the 2×2 table expects fewer than 5
deals (the score test is too bold there), else the score test; Benjamini–Hochberg controls the false discovery
rate over all of them. A change is *significant* when its BH-adjusted p-value is at most ``fdr``.

*Mix and rate effects* of the end-to-end change, by the breakdown field (default ``source``):
Δ = Σ (w_B − w_A)·r_A  [mix: the share of each group changed]  +  Σ w_B·(r_B − r_A)  [rate: groups converted
differently]; the two add up to Δ exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from voronka.analytics.diagnosis._common import Result
from voronka.analytics.diagnosis.deals import DealTable
from voronka.errors import InputError
from voronka.stats import benjamini_hochberg, exact_test, newcombe_diff, score_test

BREAKDOWNS = ("source", "segment", "owner")


@dataclass
class ChangeRow:
    stage: str
    group: str  # "(all)" or a value of the breakdown field
    reached_a: int
    passed_a: int
    rate_a: float | None
    reached_b: int
    passed_b: int
    rate_b: float | None
    change: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    q_value: float | None
    significant: bool


@dataclass
class CompareResult(Result):
    pipeline: str
    period_a: tuple[datetime, datetime]
    period_b: tuple[datetime, datetime]
    age_days: float
    now: datetime
    deals_a: int
    deals_b: int
    too_young_a: int
    too_young_b: int
    by: str
    total_change: float | None
    mix_effect: float | None
    rate_effect: float | None
    rows: list[ChangeRow]
    fdr: float
    definition: str = field(default=__doc__ or "")

    @property
    def significant(self) -> list[ChangeRow]:
        return [r for r in self.rows if r.significant]

    def to_pandas(self) -> pd.DataFrame:
        return pd.DataFrame([r.__dict__ for r in self.rows])


def _aged(f: pd.DataFrame, n: int, age: pd.Timedelta) -> pd.DataFrame:
    """Per deal: reached_k / passed_k by entry + age, as booleans (k = 0..n, n = won)."""
    limit = f["entry"] + age
    return pd.DataFrame({f"r{k}": (f[f"reach_{k}"] <= limit).fillna(False).astype(bool) for k in range(n + 1)})


def compare_periods(
    table: DealTable,
    period_a: tuple[datetime, datetime],
    period_b: tuple[datetime, datetime],
    *,
    age_days: float = 30,
    now: datetime | None = None,
    by: str = "source",
    fdr: float = 0.05,
    confidence: float = 0.95,
) -> CompareResult:
    """Compare the cohorts that entered in ``period_a`` and ``period_b`` at equal age, stage by stage."""
    if by not in BREAKDOWNS:
        raise InputError(f"Unknown breakdown {by!r}: use one of {', '.join(BREAKDOWNS)}.")
    if age_days <= 0:
        raise InputError(f"--age {age_days!r} must be a positive number of days, e.g. 30.")
    f, n = table.frame, table.n_open
    if now is None:
        now = _latest(f)
    age = pd.Timedelta(days=age_days)
    cohorts, young = [], []
    for start, end in (period_a, period_b):
        if start >= end:
            raise InputError(f"The period [{start.date()}, {end.date()}) is empty: give a later end.")
        c = f[(f["entry"] >= pd.Timestamp(start)) & (f["entry"] < pd.Timestamp(end))]
        old = c["entry"] + age <= pd.Timestamp(now)
        young.append(int((~old).sum()))
        cohorts.append(c[old].reset_index(drop=True))
    a, b = cohorts
    if not len(a) or not len(b):
        raise InputError(
            f"A cohort is empty at age {age_days:g} days (deals: {len(a)} and {len(b)}; too young: {young[0]} "
            f"and {young[1]}). Choose earlier periods or a smaller --age."
        )
    ra, rb = _aged(a, n, age), _aged(b, n, age)
    names = table.stage_names
    rows = []
    groups = [("(all)", None)] + [(str(g), g) for g in sorted(set(a[by]) | set(b[by]))]
    for label, value in groups:
        ma = np.ones(len(a), bool) if value is None else (a[by] == value).to_numpy()
        mb = np.ones(len(b), bool) if value is None else (b[by] == value).to_numpy()
        for k in range(n):
            rows.append(_row(names[k], label, ra[ma], rb[mb], f"r{k}", f"r{k + 1}", confidence))
        rows.append(_row("→ " + names[n] + " (end to end)", label, ra[ma], rb[mb], "r0", f"r{n}", confidence))
    reject, adj = benjamini_hochberg([np.nan if r.p_value is None else r.p_value for r in rows], fdr)
    for r, rej, q in zip(rows, reject, adj, strict=True):
        r.q_value = None if np.isnan(q) else float(q)
        r.significant = bool(rej)
    total, mix, rate = _mix_rate(a, b, ra[f"r{n}"], rb[f"r{n}"], by)
    return CompareResult(
        pipeline=table.pipeline.name,
        period_a=period_a,
        period_b=period_b,
        age_days=age_days,
        now=now,
        deals_a=len(a),
        deals_b=len(b),
        too_young_a=young[0],
        too_young_b=young[1],
        by=by,
        total_change=total,
        mix_effect=mix,
        rate_effect=rate,
        rows=rows,
        fdr=fdr,
    )


def _latest(f: pd.DataFrame) -> datetime:
    cols = [c for c in f.columns if c.startswith("reach_")] + ["entry", "closed_at"]
    latest = max(f[c].max() for c in cols if f[c].notna().any())
    return pd.Timestamp(latest).to_pydatetime()


def _row(stage: str, group: str, a: pd.DataFrame, b: pd.DataFrame, frm: str, to: str, conf: float) -> ChangeRow:
    na, ka = int(a[frm].sum()), int(a[to].sum())
    nb, kb = int(b[frm].sum()), int(b[to].sum())
    change = lo = hi = p = None
    if na and nb:
        change, lo, hi = newcombe_diff(kb, nb, ka, na, conf)
        pooled = (ka + kb) / (na + nb)
        expected = min(na, nb) * min(pooled, 1 - pooled)
        p = exact_test(kb, nb, ka, na) if expected < 5 else score_test(kb, nb, ka, na)[1]
    return ChangeRow(
        stage, group, na, ka, ka / na if na else None, nb, kb, kb / nb if nb else None, change, lo, hi, p, None, False
    )


def _mix_rate(
    a: pd.DataFrame, b: pd.DataFrame, won_a: pd.Series, won_b: pd.Series, by: str
) -> tuple[float | None, float | None, float | None]:
    ga = pd.DataFrame({"g": a[by], "w": won_a}).groupby("g")["w"].agg(["size", "mean"])
    gb = pd.DataFrame({"g": b[by], "w": won_b}).groupby("g")["w"].agg(["size", "mean"])
    both = ga.add_suffix("_a").join(gb.add_suffix("_b"), how="outer").fillna(0.0)
    wa, wb = both["size_a"] / both["size_a"].sum(), both["size_b"] / both["size_b"].sum()
    # A group absent from A has no rate there: take B's own rate, so its arrival counts as mix, not rate.
    rate_a = np.where(both["size_a"] > 0, both["mean_a"], both["mean_b"])
    rate_b = np.where(both["size_b"] > 0, both["mean_b"], rate_a)
    mix = float(((wb - wa) * rate_a).sum())
    rate = float((wb * (rate_b - rate_a)).sum())
    total = float(won_b.mean() - won_a.mean())
    return total, mix, rate
