"""The workspace as users see it: the store's reads and writes plus the reports."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from voronka.analytics.stage_funnel import GroupBy, StageFunnelQuery, StageFunnelResult, run_stage_funnel
from voronka.analytics.stuck import StuckResult, find_stuck
from voronka.domain.parse import parse_time
from voronka.service.plans import Plan, PlanFactResult
from voronka.store.workspace import WorkspaceStore

if TYPE_CHECKING:  # imported where used: the forecast's modules import pandas (0.3 s of every command's start)
    from voronka.analytics.diagnosis.diagnose import DiagnosisResult
    from voronka.analytics.forecast.backtest import BacktestResult
    from voronka.analytics.forecast.forecast import ForecastResult
    from voronka.analytics.forecast.reverse import NeedResult


class Workspace(WorkspaceStore):
    """A Voronka workspace: pipelines, deals and their history, and the reports on them.

    Examples
    --------
    >>> import voronka
    >>> ws = voronka.open("sqlite://")
    >>> p = ws.create_pipeline("Sales", stages=["Request", "Call", "Contract"], reasons=["Too expensive"])
    >>> d = ws.add_deal("Sales", "Kitchen for Ivanov", amount="150000", at=parse_time("2026-01-10"))
    >>> _ = ws.move_deal(d.id, "Contract", at=parse_time("2026-01-12"))
    >>> ws.funnel("Sales").overall.entered
    1
    """

    def funnel(
        self,
        pipeline: str | int,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        by: GroupBy | None = None,
        strict: bool = False,
        confidence: float = 0.95,
    ) -> StageFunnelResult:
        """The stage funnel of a pipeline; see :mod:`voronka.analytics.stage_funnel` for the definitions."""
        query = StageFunnelQuery(
            pipeline,
            start=None if start is None else parse_time(start, what="--from date"),
            end=None if end is None else parse_time(end, what="--to date"),
            by=by,
            strict=strict,
            confidence=confidence,
        )
        return run_stage_funnel(self, query)

    def stuck(self, pipeline: str | int | None = None, *, now: datetime | None = None) -> StuckResult:
        """Open deals over their stage's SLA with nothing planned ahead."""
        return find_stuck(self, pipeline, now)

    def diagnose(self, pipeline: str | int, **options: Any) -> DiagnosisResult:
        """The bottleneck, managers on a funnel plot and hints; see :func:`voronka.service.reports.diagnose`."""
        from voronka.service.reports import diagnose

        return diagnose(self, pipeline, **options)

    # -- forecast and plans (voronka.service.forecast, voronka.service.plans) -----------------------------

    def forecast(self, pipeline: str | int, *, currency: str | None = None, **query: Any) -> ForecastResult:
        """Forecast of the next months in ``currency`` (default: the pipeline's main one); other keyword arguments
        as :class:`voronka.analytics.forecast.ForecastQuery`."""
        from voronka.analytics.forecast.forecast import ForecastQuery
        from voronka.service.forecast import forecast

        return forecast(self, pipeline, ForecastQuery(**query), currency)

    def backtest(self, pipeline: str | int, **options: Any) -> BacktestResult:
        """Rolling-origin backtest of the forecast; options as :func:`voronka.service.forecast.backtest`."""
        from voronka.service.forecast import backtest

        return backtest(self, pipeline, **options)

    def deal_odds(self, pipeline: str | int, as_of: datetime | str | None = None) -> Any:
        """Open deals with their data-driven P(win) (a DataFrame); see :func:`voronka.service.forecast.deal_odds`."""
        from voronka.service.forecast import deal_odds

        return deal_odds(self, pipeline, as_of)

    def plan_need(self, pipeline: str | int, target: float, **options: Any) -> NeedResult:
        """Leads needed for a revenue target; options as :func:`voronka.service.forecast.plan_need`."""
        from voronka.service.forecast import plan_need

        return plan_need(self, pipeline, target, **options)

    def set_plan(self, metric: str, period: str, start: Any, target: Any, **scope: Any) -> Plan:
        """Set a plan; see :func:`voronka.service.plans.set_plan`."""
        from voronka.service.plans import set_plan

        return set_plan(self, metric, period, start, target, **scope)

    def plan_fact(self, period: str = "month", day: Any = None, **options: Any) -> PlanFactResult:
        """Plan vs fact for a period; see :func:`voronka.service.plans.plan_fact`."""
        from voronka.service.plans import plan_fact

        return plan_fact(self, period, day, **options)
