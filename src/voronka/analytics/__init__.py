"""Reports computed from the move log (stage funnels, stuck deals) and from event logs (``analytics.events``)."""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "FunnelGroup": "stage_funnel",
    "FunnelTotals": "stage_funnel",
    "StageFunnelQuery": "stage_funnel",
    "StageFunnelResult": "stage_funnel",
    "StageRow": "stage_funnel",
    "run_stage_funnel": "stage_funnel",
    "StuckDeal": "stuck",
    "StuckResult": "stuck",
    "find_stuck": "stuck",
}


def __getattr__(name: str) -> Any:
    # Imported on first use, so that `voronka.analytics.events` does not load the workspace store.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"voronka.analytics.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'voronka.analytics' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
