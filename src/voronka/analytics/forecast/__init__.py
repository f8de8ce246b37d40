"""Forecasting from the move log: the flow model, Monte Carlo, backtest, reverse plan, plan vs fact."""

from voronka.analytics.forecast.forecast import (
    ForecastQuery,
    ForecastResult,
    GroupForecast,
    MonthForecast,
    StageOdds,
    Summary,
    deal_p_win,
    run_forecast,
)
from voronka.analytics.forecast.history import FlowHistory, history_from_log
from voronka.analytics.forecast.model import FitOptions, FlowModel, fit

__all__ = [
    "FitOptions",
    "FlowHistory",
    "FlowModel",
    "ForecastQuery",
    "ForecastResult",
    "GroupForecast",
    "MonthForecast",
    "StageOdds",
    "Summary",
    "deal_p_win",
    "fit",
    "history_from_log",
    "run_forecast",
]
