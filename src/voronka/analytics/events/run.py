"""One entry point for both engines."""

from __future__ import annotations

from typing import Literal

from voronka.analytics.events.engine import run_inprocess, validate_engine
from voronka.analytics.events.query import FunnelQuery
from voronka.analytics.events.result import FunnelResult
from voronka.analytics.events.source import EventSource


def run_funnel(
    source: EventSource,
    query: FunnelQuery,
    *,
    engine: Literal["inprocess", "clickhouse"] = "inprocess",
    clickhouse_url: str | None = None,
) -> FunnelResult:
    """Compute an event funnel.

    ``engine="inprocess"`` (default) runs here; ``"clickhouse"`` compiles the query to ClickHouse SQL and runs it
    in chDB (embedded, reading the same file) or, with ``clickhouse_url``, on a server.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"entity": [1, 1, 1, 2], "time": [0, 60, 120, 0],
    ...                     "event": ["view", "cart", "buy", "view"]})
    >>> r = run_funnel(EventSource(log), FunnelQuery(steps=("view", "cart", "buy"), window="1h"))
    >>> [s.entities for s in r.steps]
    [2, 1, 1]
    """
    validate_engine(engine)
    if engine == "clickhouse":
        from voronka.analytics.events.clickhouse import run_clickhouse

        return run_clickhouse(source, query, url=clickhouse_url)
    return run_inprocess(source, query)
