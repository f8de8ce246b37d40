"""Rolling-origin backtest: how wrong the forecast was, month by month, against two baselines.

For each past month start (the *origin*) with enough history before it and at least one whole month after it:
cut the log at the origin (only moves before it), fit the flow model on that, forecast the next months, and
compare with the revenue actually won in each of them. Measures per horizon (1, 2, 3 months ahead), over origins:

- ``wape`` = Σ|forecast − actual| / Σ actual, the forecast being the median (p50) of the paths;
- ``bias`` = Σ(forecast − actual) / Σ actual (positive: too optimistic);
- ``coverage_80`` / ``coverage_50``: the share of origins whose actual fell inside [p10, p90] / [p25, p75];
- baselines: ``wape_naive`` (next month = last month's revenue) and ``wape_weighted_pipeline`` (open amounts at
  the origin × hand-set stage probabilities, the usual CRM forecast; by default stage k of n has (k+1)/(n+1));
- the same for the number of deals won: ``won_wape``, ``won_bias``, ``won_coverage_80``, ``won_coverage_50``,
  ``won_wape_naive`` (when no deal has an amount, the revenue measures are null and a note says so).

What the model could not know is kept out, but two things come from today's data: the amounts of deals (a deal's
amount as it is now) and owners/sources.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from voronka.analytics.forecast.history import DAY_US, FlowHistory, first_time, open_deals, wins
from voronka.analytics.forecast.model import FitOptions, fit
from voronka.analytics.forecast.montecarlo import add_months, simulate
from voronka.errors import InputError
from voronka.store.types import from_micros, to_micros

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class BacktestRow:
    origin: str
    horizon: int
    actual: float
    mean: float
    p10: float
    p25: float
    p50: float
    p75: float
    p90: float
    naive: float
    weighted_pipeline: float
    won_actual: int
    won_p10: float
    won_p25: float
    won_p50: float
    won_p75: float
    won_p90: float
    won_naive: int


@dataclass
class BacktestSummary:
    horizon: int
    origins: int
    actual_total: float
    wape: float | None
    bias: float | None
    coverage_80: float | None
    coverage_50: float | None
    wape_naive: float | None
    wape_weighted_pipeline: float | None
    won_wape: float | None  # the same measures for the number of deals won
    won_bias: float | None
    won_coverage_80: float | None
    won_coverage_50: float | None
    won_wape_naive: float | None


@dataclass
class BacktestResult:
    pipeline: str
    currency: str
    paths: int
    hand_probabilities: dict[str, float]
    summary: list[BacktestSummary]
    rows: list[BacktestRow]
    definition: str
    skipped_origins: list[str] = field(default_factory=list)  # too little history before them to fit
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    def to_pandas(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.rows])


DEFINITION = (
    "Rolling origin: at each past month start, the model is fitted on the moves before it only and forecasts the "
    "next months; actual = amounts of deals moved to won in the month. WAPE = Σ|p50 − actual| / Σ actual; bias = "
    "Σ(p50 − actual) / Σ actual; coverage_80/50 = share of origins with actual in [p10, p90] / [p25, p75]. "
    "Baselines (month 1): naive = last month's revenue; weighted pipeline = open amounts × hand-set stage "
    "probabilities."
)


def origins(h: FlowHistory, now: int, min_history_days: int) -> list[int]:
    """Month starts (UTC) with ``min_history_days`` of log before them and a whole month after, up to ``now``."""
    first = first_time(h)
    if first is None:
        return []
    start = from_micros(first + min_history_days * DAY_US)
    t = datetime(start.year, start.month, 1, tzinfo=UTC)
    if t < start:
        t = add_months(t, 1)
    out = []
    while to_micros(add_months(t, 1)) <= now:
        out.append(to_micros(t))
        t = add_months(t, 1)
    return out


def run_backtest(
    h: FlowHistory,
    now: int,
    *,
    months: int = 3,
    paths: int = 2_000,
    min_history_days: int = 90,
    hand: list[float] | None = None,
    options: FitOptions | None = None,
    seed: int = 0,
) -> BacktestResult:
    """Backtest the forecast of ``h`` at every origin before ``now``; see the module docstring."""
    if not 1 <= months <= 12:
        raise InputError(f"--months {months}: backtest between 1 and 12 months ahead, e.g. --months 3.")
    hand_p = np.asarray(hand if hand is not None else [(k + 1) / (h.n + 1) for k in range(h.n)], dtype=np.float64)
    if len(hand_p) != h.n or not ((hand_p >= 0) & (hand_p <= 1)).all():
        raise InputError(
            f"--hand {hand_p.tolist()}: give one probability in [0, 1] per open stage "
            f"({h.n} stages: {', '.join(h.stages)})."
        )
    starts = origins(h, now, min_history_days)
    if not starts:
        raise InputError(
            f"Pipeline {h.pipeline!r} has no month start with {min_history_days} days of history before it and a "
            f"whole month after it: too little history to backtest."
        )
    amount = np.nan_to_num(h.deal_amount)
    rows: list[BacktestRow] = []
    skipped: list[str] = []
    for i, origin in enumerate(starts):
        try:
            model = fit(h, origin, options)
        except InputError:  # too little history before this origin: later ones may have enough
            skipped.append(from_micros(origin).date().isoformat())
            continue
        horizon = sum(to_micros(add_months(from_micros(origin), m)) <= now for m in range(1, months + 1))
        sims = simulate(model, h, months=horizon, paths=paths, draws=128, seed=seed + i)
        rev = sims.revenue.sum(axis=1)  # (paths, months)
        q = np.quantile(rev, [0.1, 0.25, 0.5, 0.75, 0.9], axis=0)
        qw = np.quantile(sims.won.sum(axis=1), [0.1, 0.25, 0.5, 0.75, 0.9], axis=0)
        prev = to_micros(add_months(from_micros(origin), -1))
        naive = float(amount[wins(h, prev, origin)].sum())
        won_naive = len(wins(h, prev, origin))
        op = open_deals(h.before(origin), origin)
        weighted = float((amount[op.index] * hand_p[op.stage]).sum())
        for m in range(horizon):
            a, b = sims.bounds[m], sims.bounds[m + 1]
            won_now = wins(h, a, b)
            rows.append(
                BacktestRow(
                    origin=from_micros(origin).date().isoformat(),
                    horizon=m + 1,
                    actual=float(amount[won_now].sum()),
                    mean=float(rev[:, m].mean()),
                    p10=float(q[0, m]),
                    p25=float(q[1, m]),
                    p50=float(q[2, m]),
                    p75=float(q[3, m]),
                    p90=float(q[4, m]),
                    naive=naive,
                    weighted_pipeline=weighted,
                    won_actual=len(won_now),
                    won_p10=float(qw[0, m]),
                    won_p25=float(qw[1, m]),
                    won_p50=float(qw[2, m]),
                    won_p75=float(qw[3, m]),
                    won_p90=float(qw[4, m]),
                    won_naive=won_naive,
                )
            )
    if not rows:
        fit(h, starts[-1], options)  # raises the error that says what is missing
    notes = list(h.notes)
    no_amounts = bool(np.isnan(h.deal_amount).all())
    if no_amounts:
        notes.append("No deal has an amount: there is no revenue to backtest; the won-count measures still hold.")
    return BacktestResult(
        pipeline=h.pipeline,
        currency=h.currency,
        paths=paths,
        hand_probabilities={s: float(p) for s, p in zip(h.stages, hand_p, strict=True)},
        summary=[_summary(rows, m, no_amounts) for m in range(1, months + 1) if any(r.horizon == m for r in rows)],
        rows=rows,
        definition=DEFINITION,
        skipped_origins=skipped,
        notes=notes,
    )


def _summary(rows: list[BacktestRow], horizon: int, no_amounts: bool = False) -> BacktestSummary:
    mine = [r for r in rows if r.horizon == horizon]
    rev = _measures(
        np.array([r.actual for r in mine]),
        np.array([[r.p10, r.p25, r.p50, r.p75, r.p90] for r in mine]),
        np.array([r.naive for r in mine]),
    )
    won = _measures(
        np.array([r.won_actual for r in mine], dtype=float),
        np.array([[r.won_p10, r.won_p25, r.won_p50, r.won_p75, r.won_p90] for r in mine]),
        np.array([r.won_naive for r in mine], dtype=float),
    )
    if no_amounts:
        rev = dict.fromkeys(rev)
    total = float(sum(r.actual for r in mine))
    weighted = np.array([r.weighted_pipeline for r in mine])
    actual = np.array([r.actual for r in mine])
    return BacktestSummary(
        horizon=horizon,
        origins=len(mine),
        actual_total=total,
        wape=rev["wape"],
        bias=rev["bias"],
        coverage_80=rev["coverage_80"],
        coverage_50=rev["coverage_50"],
        wape_naive=rev["wape_naive"],
        wape_weighted_pipeline=float(np.abs(weighted - actual).sum() / total) if total > 0 else None,
        won_wape=won["wape"],
        won_bias=won["bias"],
        won_coverage_80=won["coverage_80"],
        won_coverage_50=won["coverage_50"],
        won_wape_naive=won["wape_naive"],
    )


def _measures(actual: np.ndarray, q: np.ndarray, naive: np.ndarray) -> dict[str, float | None]:
    """WAPE and bias of the median, coverage of [p10, p90] and [p25, p75], WAPE of the naive forecast."""
    total = float(actual.sum())
    return {
        "wape": float(np.abs(q[:, 2] - actual).sum() / total) if total > 0 else None,
        "bias": float((q[:, 2] - actual).sum() / total) if total > 0 else None,
        "coverage_80": float(np.mean((q[:, 0] <= actual) & (actual <= q[:, 4]))),
        "coverage_50": float(np.mean((q[:, 1] <= actual) & (actual <= q[:, 3]))),
        "wape_naive": float(np.abs(naive - actual).sum() / total) if total > 0 else None,
    }
