"""Event journeys as data: ``{entity: [(seconds, event, {props}), ...]}`` → a log, and helpers to run funnels."""

from __future__ import annotations

from typing import Any

import pandas as pd

from voronka.analytics.events import EventSource, FunnelQuery, FunnelResult, run_funnel

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
H = 3600
D = 86_400

Journeys = dict[Any, list[tuple[Any, ...]]]


def log_of(journeys: Journeys, t0: int = T0) -> pd.DataFrame:
    """One row per event; times are ``t0`` plus the given seconds, as epoch seconds."""
    rows = []
    for entity, events in journeys.items():
        for ev in events:
            props = ev[2] if len(ev) > 2 else {}
            rows.append({"entity": entity, "time": t0 + ev[0], "event": ev[1], **props})
    frame = pd.DataFrame(rows)
    if "entity" not in frame:
        frame = pd.DataFrame({"entity": pd.Series([], dtype="int64"), "time": [], "event": []})
    return frame


def funnel(journeys: Journeys | pd.DataFrame, steps: Any, window: Any = "1d", **kw: Any) -> FunnelResult:
    log = journeys if isinstance(journeys, pd.DataFrame) else log_of(journeys)
    engine = kw.pop("engine", "inprocess")
    return run_funnel(EventSource(log), FunnelQuery(steps=tuple(steps), window=window, **kw), engine=engine)


def counts(journeys: Journeys | pd.DataFrame, steps: Any, window: Any = "1d", **kw: Any) -> list[int]:
    return [s.entities for s in funnel(journeys, steps, window, **kw).steps]


def by_value(result: FunnelResult) -> dict[str, list[int]]:
    return {g.value: [s.entities for s in g.steps] for g in result.breakdown}
