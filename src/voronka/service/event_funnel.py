"""The event-funnel use case: turn what a user typed (a source, column names, options) into a query and run it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from voronka.analytics.events import EventSource, FunnelQuery, FunnelResult, StageStep, run_funnel
from voronka.analytics.events.query import FunnelQueryError
from voronka.domain.parse import parse_time
from voronka.store.workspace import WorkspaceStore

WORKSPACE_SOURCE = "workspace"


def event_source(
    source: str,
    entity: str | None,
    time: str | None,
    event: str | None,
    store: Callable[[], WorkspaceStore],
    crm: bool = False,
) -> EventSource:
    """``workspace`` means the workspace's imported events (columns entity, time, event, and the properties);
    anything else is a file, ``DB.duckdb:TABLE``, or with a ClickHouse URL a table on the server. With ``crm`` the
    workspace's deals feed CRM stage steps."""
    cols = {"entity": entity or "entity", "time": time or "time", "event": event or "event"}
    if source == WORKSPACE_SOURCE:
        return EventSource(store(), **cols)
    return EventSource(source, crm=store() if crm else None, **cols)


def parse_step(text: str) -> str | StageStep:
    """``view`` is an event; ``stage:PIPELINE:STAGE`` a CRM stage of a workspace pipeline."""
    text = text.strip()
    if text.startswith("stage:"):
        parts = text.split(":", 2)
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise FunnelQueryError("stages.format", f"Step {text!r}: write a CRM stage as stage:PIPELINE:STAGE.")
        return StageStep(parts[1], parts[2])
    return text


def parse_attribution(text: str | None) -> dict[str, Any]:
    """``first_touch`` (default), ``last_touch`` or ``step:N``."""
    if text is None or text in ("first_touch", "first"):
        return {"attribution": "first_touch"}
    if text in ("last_touch", "last"):
        return {"attribution": "last_touch"}
    if text.startswith("step:") and text[5:].isdigit():
        return {"attribution": "step", "attribution_step": int(text[5:])}
    raise FunnelQueryError(
        "breakdown.attribution", f"Attribution {text!r} is unknown: use first_touch, last_touch or step:N."
    )


def run_event_funnel(
    source: EventSource,
    *,
    steps: list[str],
    window: str,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    engine: str = "inprocess",
    clickhouse_url: str | None = None,
    attribution: str | None = None,
    **options: Any,
) -> FunnelResult:
    """Build a :class:`FunnelQuery` from user input and run it on the chosen engine."""
    if clickhouse_url and engine != "clickhouse":
        raise FunnelQueryError("engine.url", "--clickhouse-url needs --engine clickhouse.")
    query = FunnelQuery(
        steps=tuple(parse_step(s) for s in steps if s.strip()),
        window=window,
        start=None if start is None else parse_time(start, what="--from date"),
        end=None if end is None else parse_time(end, what="--to date"),
        **({} if options.get("by") is None else parse_attribution(attribution)),
        **options,
    )
    return run_funnel(source, query, engine=engine, clickhouse_url=clickhouse_url)  # type: ignore[arg-type]
