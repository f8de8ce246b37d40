"""Event funnels over event logs: :class:`FunnelQuery` → :class:`FunnelResult`, in process or on ClickHouse.

The rules, with worked examples, are in ``docs/funnels.md``.
"""

from __future__ import annotations

from voronka.analytics.events.query import Exclusion, FunnelQuery, FunnelQueryError, Step, Where, parse_duration
from voronka.analytics.events.result import BreakdownGroup, FunnelResult, StepStats
from voronka.analytics.events.run import run_funnel
from voronka.analytics.events.source import EventSource
from voronka.analytics.events.stages import StageStep

__all__ = [
    "BreakdownGroup",
    "EventSource",
    "Exclusion",
    "FunnelQuery",
    "FunnelQueryError",
    "FunnelResult",
    "StageStep",
    "Step",
    "StepStats",
    "Where",
    "parse_duration",
    "run_funnel",
]
