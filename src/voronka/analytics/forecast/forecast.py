"""The forecast report: months ahead, per group, with mean and quantiles, and the chance of reaching a plan."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from voronka.analytics.forecast.chain import absorption
from voronka.analytics.forecast.history import FlowHistory
from voronka.analytics.forecast.model import FitOptions, FlowModel, fit, mean_params
from voronka.analytics.forecast.montecarlo import Samples, simulate
from voronka.errors import InputError
from voronka.store.types import from_micros

if TYPE_CHECKING:
    import pandas as pd

ForecastBy = Literal["owner", "source"]
FORECAST_BYS: tuple[str, ...] = ("owner", "source")
QUANTILES = (0.10, 0.25, 0.50, 0.75, 0.90)


@dataclass(frozen=True)
class ForecastQuery:
    """What to forecast: ``months`` ahead of ``as_of`` (default: now), ``paths`` Monte Carlo paths, optionally
    broken down ``by`` owner or source, with the probability of reaching ``target`` revenue over the months."""

    months: int = 3
    paths: int = 10_000
    draws: int = 128  # distinct parameter draws, shared out over the paths
    by: ForecastBy | None = None
    target: float | None = None
    as_of: datetime | None = None
    seed: int = 0

    def validate(self) -> None:
        if not 1 <= self.months <= 12:
            raise InputError(f"--months {self.months}: forecast between 1 and 12 months ahead, e.g. --months 3.")
        if not 100 <= self.paths <= 1_000_000:
            raise InputError(f"--paths {self.paths}: use between 100 and 1,000,000 paths (default 10,000).")
        if self.by is not None and self.by not in FORECAST_BYS:
            raise InputError(f"Unknown breakdown {self.by!r}: use one of {', '.join(FORECAST_BYS)}.")
        if self.target is not None and not self.target > 0:
            raise InputError(f"--target {self.target!r}: a revenue target must be a positive amount, e.g. 1500000.")


@dataclass
class Summary:
    """A quantity over the paths: its mean and quantiles (p10 … p90)."""

    mean: float
    p10: float
    p25: float
    p50: float
    p75: float
    p90: float


def summarise(values: np.ndarray, axis: int = 0) -> Any:
    """Summaries of ``values`` along ``axis``: one :class:`Summary`, or a nested list of them."""
    q = np.quantile(values, QUANTILES, axis=axis)
    mean = values.mean(axis=axis)
    if np.ndim(mean) == 0:
        return Summary(float(mean), *(float(x) for x in q))
    return np.frompyfunc(lambda m, *qs: Summary(float(m), *(float(x) for x in qs)), 6, 1)(mean, *q)


@dataclass
class MonthForecast:
    month: int
    start: str
    end: str
    revenue: Summary
    won: Summary
    new_deals: Summary
    stages: dict[str, Summary]


@dataclass
class GroupForecast:
    group: str
    open_deals: int
    open_amount: float
    months: list[MonthForecast]


@dataclass
class StageOdds:
    """The data-driven probability of winning from a stage: for a deal just in, and after 7 / 30 days there."""

    stage: str
    p_win_new: float
    p_win_7d: float
    p_win_30d: float


@dataclass
class ForecastResult:
    """The forecast of one pipeline; ``groups[0]`` is the whole pipeline (``all``), then one per group."""

    pipeline: str
    as_of: str
    currency: str
    model: str
    notes: list[str]
    paths: int
    months: list[MonthForecast]
    groups: list[GroupForecast]
    stage_odds: list[StageOdds]
    inflow_per_week: float
    finished_stays: int
    target: float | None = None
    p_target: float | None = None
    by: str | None = None
    definition: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    def to_pandas(self) -> pd.DataFrame:
        """One row per (group, month, measure): mean, p10, p50, p90."""
        import pandas as pd

        rows = []
        for g in self.groups if self.by else [GroupForecast("all", 0, 0.0, self.months)]:
            for m in g.months:
                measures = {"revenue": m.revenue, "won": m.won, "new_deals": m.new_deals}
                measures.update({f"in stage: {k}": v for k, v in m.stages.items()})
                for name, s in measures.items():
                    rows.append(
                        {
                            **({self.by: g.group} if self.by else {}),
                            "month": m.month,
                            "start": m.start,
                            "end": m.end,
                            "measure": name,
                            "mean": s.mean,
                            "p10": s.p10,
                            "p50": s.p50,
                            "p90": s.p90,
                        }
                    )
        return pd.DataFrame(rows)


def model_label(model: FlowModel) -> str:
    if model.kind == "simple":
        return "simple: constant exit rate per stage (history too thin for age effects)"
    buckets = sum(len(e) for e in model.edges_)
    return f"age-dependent exit rates: {buckets} (stage, age bucket) cells, moves back included"


DEFINITION = (
    "Monte Carlo over a flow model fitted on the move log: open stages with exit rates that depend on the days "
    "already spent in the stage, destinations (forward, back, won, lost) per stage and age, and a Poisson inflow "
    "of new deals at the recent weekly rate; every path draws its parameters from their posterior. Months are "
    "[as_of + m-1 months, as_of + m months). Revenue: amounts of deals won in the month (new deals' amounts drawn "
    "from past wins). Stages: deals in each stage at the month's end. p10/p50/p90: quantiles over paths."
)


def run_forecast(h: FlowHistory, as_of: int, query: ForecastQuery, options: FitOptions | None = None) -> ForecastResult:
    """Fit the flow model on ``h`` as of ``as_of`` and simulate; see :mod:`.montecarlo`."""
    query.validate()
    model = fit(h, as_of, options)
    sims = simulate(model, h, months=query.months, paths=query.paths, draws=query.draws, seed=query.seed)
    overall = _months(sims, model, None)
    groups = [GroupForecast("all", int(sims.open_count.sum()), float(sims.open_amount.sum()), overall)]
    if query.by is not None:
        by = simulate(model, h, months=query.months, paths=query.paths, draws=query.draws, by=query.by, seed=query.seed)
        order = np.argsort(-by.revenue.sum(axis=2).mean(axis=0), kind="stable")
        groups += [
            GroupForecast(by.labels[i], int(by.open_count[i]), float(by.open_amount[i]), _months(by, model, int(i)))
            for i in order
        ]
    notes = list(h.notes) + list(model.notes)
    if sims.missing_amounts:
        notes.append(f"{sims.missing_amounts} open deals have no amount: counted at the mean won amount.")
    p_target = None
    if query.target is not None:
        p_target = float((sims.revenue.sum(axis=(1, 2)) >= query.target).mean())
    return ForecastResult(
        pipeline=h.pipeline,
        as_of=from_micros(as_of).isoformat(),
        currency=h.currency,
        model=model_label(model),
        notes=notes,
        paths=query.paths,
        months=overall,
        groups=groups,
        stage_odds=stage_odds(model),
        inflow_per_week=model.weekly_inflow(),
        finished_stays=model.n_exits,
        target=query.target,
        p_target=p_target,
        by=query.by,
        definition=DEFINITION,
    )


def _months(s: Samples, model: FlowModel, group: int | None) -> list[MonthForecast]:
    pick = (lambda a: a.sum(axis=1)) if group is None else (lambda a: a[:, group])
    rev, won, new = summarise(pick(s.revenue)), summarise(pick(s.won)), summarise(pick(s.new))
    occ = summarise(pick(s.stages))
    out = []
    for m in range(s.revenue.shape[2]):
        out.append(
            MonthForecast(
                month=m + 1,
                start=from_micros(s.bounds[m]).date().isoformat(),
                end=from_micros(s.bounds[m + 1]).date().isoformat(),
                revenue=rev[m],
                won=won[m],
                new_deals=new[m],
                stages={name: occ[m, j] for j, name in enumerate(model.stages)},
            )
        )
    return out


def stage_odds(model: FlowModel) -> list[StageOdds]:
    """P(win) from each stage at age 0, 7 and 30 days, under the posterior-mean parameters."""
    x = absorption(mean_params(model))[0, :, :, 0]
    last = x.shape[1] - 1
    return [
        StageOdds(name, float(x[s, 0]), float(x[s, min(7, last)]), float(x[s, min(30, last)]))
        for s, name in enumerate(model.stages)
    ]


def deal_p_win(model: FlowModel, stage: np.ndarray, age_days: np.ndarray) -> np.ndarray:
    """P(win) of open deals in ``stage`` (index) after ``age_days`` there: for the board and the deal card."""
    x = absorption(mean_params(model))[0, :, :, 0]
    a = np.minimum(np.floor(np.asarray(age_days, dtype=np.float64)).astype(np.int64), x.shape[1] - 1)
    return x[np.asarray(stage, dtype=np.int64), a]
