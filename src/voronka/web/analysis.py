"""The forecast and diagnosis pages' data: ``ws.forecast`` / ``ws.backtest`` / ``ws.diagnose`` with the web's rules.

Who sees what: heads and admins see the whole funnel. A manager sees their own forecast only — the owner group
of ``ws.forecast(by="owner")``, whose rates are shrunk towards the funnel's (docs/forecast.md, *Groups*) — and
neither the backtest nor the diagnosis, which are made of the whole team's numbers (the diagnosis compares
managers with each other): those answer *403 forbidden* to a manager.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from voronka.analytics.diagnosis._common import clean
from voronka.analytics.diagnosis.diagnose import DiagnosisResult
from voronka.analytics.forecast.forecast import ForecastResult, MonthForecast
from voronka.domain.pipeline import Pipeline
from voronka.errors import InputError
from voronka.service.accounts import Account
from voronka.service.workspace import Workspace
from voronka.web.access import Forbidden

MONTHS = 3
FORECAST_PATHS = 2_000  # the CLI's default is 10,000; 2,000 keeps a page under a few seconds (the page says so)
BACKTEST_PATHS = 500  # per origin and month; the CLI's default is 2,000
MEASURES = ("won", "revenue")
QUANTILE_KEYS = ("mean", "p10", "p50", "p90")


@dataclass
class ForecastView:
    """What the forecast page and ``GET /api/v1/pipelines/{id}/forecast`` show.

    ``owner`` is set when the numbers are one manager's own; ``error`` when the funnel cannot be forecast (too
    little history), in which case ``result`` is None.
    """

    pipeline: Pipeline
    owner: str | None
    target: float | None
    result: ForecastResult | None = None
    months: list[MonthForecast] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        assert r is not None
        return clean(
            {
                "pipeline": r.pipeline,
                "as_of": r.as_of,
                "currency": r.currency,
                "owner": self.owner,
                "model": r.model,
                "notes": r.notes,
                "paths": r.paths,
                "finished_stays": r.finished_stays,
                "target": r.target if self.owner is None else None,
                "p_target": r.p_target if self.owner is None else None,
                "months": [
                    {
                        "month": m.month,
                        "start": m.start,
                        "end": m.end,
                        **{k: {q: getattr(getattr(m, k), q) for q in QUANTILE_KEYS} for k in MEASURES},
                    }
                    for m in self.months
                ],
                "definition": r.definition,
            }
        )


def parse_target(text: str | None) -> float | None:
    """A revenue target from a form or query ("1 500 000", "1500000,5"); None when empty."""
    if text is None or not text.strip():
        return None
    cleaned = text.replace("\u00a0", "").replace(" ", "").replace(",", ".")
    try:
        value = float(cleaned)
    except ValueError:
        raise InputError(f"Target {text!r}: write a positive amount, e.g. 1500000.") from None
    if not value > 0 or value != value or value == float("inf"):
        raise InputError(f"Target {text!r}: a revenue target must be a positive amount, e.g. 1500000.")
    return value


def build_forecast(
    ws: Workspace, pipe: Pipeline, account: Account, *, target: float | None = None, strict: bool = False
) -> ForecastView:
    """The forecast of ``pipe`` for ``account`` (their own group for a manager). With ``strict`` (the API) a
    funnel that cannot be forecast raises; the page shows the message instead."""
    owner = None if account.sees_all else account.name
    view = ForecastView(pipe, owner, target if owner is None else None)
    try:
        if owner is None:
            view.result = ws.forecast(pipe.id, months=MONTHS, paths=FORECAST_PATHS, target=target)
            view.months = view.result.months
        else:
            view.result = ws.forecast(pipe.id, months=MONTHS, paths=FORECAST_PATHS, by="owner")
            mine = next((g for g in view.result.groups[1:] if g.group == owner), None)
            if mine is None:
                raise InputError(f"{owner} has no deals in {pipe.name!r} yet: there is nothing of yours to forecast.")
            view.months = mine.months
    except InputError as exc:
        if strict:
            raise
        view.result, view.months, view.error = None, [], str(exc)
    return view


def backtest_summary(ws: Workspace, pipe: Pipeline, account: Account, *, strict: bool = False) -> dict[str, Any]:
    """The backtest's summary per horizon (WAPE, bias, coverage), for heads and admins: it is the whole funnel's."""
    if not account.sees_all:
        raise Forbidden("The backtest is of the whole funnel's revenue: it is for heads of sales and admins.")
    try:
        r = ws.backtest(pipe.id, months=MONTHS, paths=BACKTEST_PATHS)
    except InputError as exc:
        if strict:
            raise
        return {"pipeline": pipe.name, "error": str(exc), "summary": [], "skipped_origins": [], "notes": []}
    return clean(
        {
            "pipeline": r.pipeline,
            "currency": r.currency,
            "paths": r.paths,
            "summary": r.summary,
            "skipped_origins": r.skipped_origins,
            "notes": r.notes,
            "definition": r.definition,
            "error": None,
        }
    )


def build_diagnosis(ws: Workspace, pipe: Pipeline, account: Account) -> DiagnosisResult:
    """``ws.diagnose`` for heads and admins; it compares managers with each other, so not for managers."""
    if not account.sees_all:
        raise Forbidden("The diagnosis compares the team's managers: it is for heads of sales and admins.")
    return ws.diagnose(pipe.id)


def benchmark_source_ru(text: str) -> str:
    """Where the benchmark comes from ("recover 20% of losses"), in Russian: the diagnosis's own wording."""
    from voronka.analytics.diagnosis.diagnose import _ru_source

    return _ru_source(text)


def diagnosis_dict(d: DiagnosisResult) -> dict[str, Any]:
    return d.to_dict()
