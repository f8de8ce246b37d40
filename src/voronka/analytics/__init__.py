"""Reports computed from the move log: stage funnels, stuck deals."""

from voronka.analytics.stage_funnel import (
    FunnelGroup,
    FunnelTotals,
    StageFunnelQuery,
    StageFunnelResult,
    StageRow,
    run_stage_funnel,
)
from voronka.analytics.stuck import StuckDeal, StuckResult, find_stuck

__all__ = [
    "FunnelGroup",
    "FunnelTotals",
    "StageFunnelQuery",
    "StageFunnelResult",
    "StageRow",
    "StuckDeal",
    "StuckResult",
    "find_stuck",
    "run_stage_funnel",
]
