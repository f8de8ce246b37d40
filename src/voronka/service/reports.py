"""Service-level reports: diagnosis, comparisons, A/B tests, KPIs, cohorts and the monthly audit.

Each function takes a workspace, reads what it needs once and calls the pure analytics in
:mod:`voronka.analytics.diagnosis`. Adapters (CLI, web) call these and only render.
"""

from __future__ import annotations

from datetime import datetime

from voronka.analytics.diagnosis.bottleneck import Benchmark, find_bottleneck
from voronka.analytics.diagnosis.deals import load_deals
from voronka.analytics.diagnosis.diagnose import DiagnosisResult, build_diagnosis
from voronka.analytics.diagnosis.managers import ManagersResult, managers_report
from voronka.domain.parse import parse_time
from voronka.store.workspace import WorkspaceStore


def _time(value: datetime | str | None, what: str) -> datetime | None:
    return None if value is None else parse_time(value, what=what)


def diagnose(
    ws: WorkspaceStore,
    pipeline: str | int,
    *,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    benchmark: Benchmark = "lift",
    lift: float = 0.2,
    targets: dict[str, float] | None = None,
    certainty: float = 0.95,
    fdr: float = 0.05,
) -> DiagnosisResult:
    """The bottleneck (named only when sure), managers on a funnel plot, and hints with their evidence."""
    s, e = _time(start, "--from date"), _time(end, "--to date")
    table = load_deals(ws, pipeline)
    b = find_bottleneck(table, benchmark=benchmark, lift=lift, targets=targets, certainty=certainty, start=s, end=e)
    m = managers_report(table.between(s, e), fdr=fdr)
    amounts = table.frame
    currency = _currency(ws) if len(amounts) else ""
    return build_diagnosis(b, m, currency)


def managers(
    ws: WorkspaceStore,
    pipeline: str | int,
    *,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    fdr: float = 0.05,
) -> ManagersResult:
    """Managers on a funnel plot, with shrunk rates and speed to lead."""
    table = load_deals(ws, pipeline).between(_time(start, "--from date"), _time(end, "--to date"))
    return managers_report(table, fdr=fdr)


def _currency(ws: WorkspaceStore) -> str:
    from sqlalchemy import func, select

    from voronka.store.schema import deals

    with ws.engine.connect() as conn:
        row = conn.execute(
            select(deals.c.currency, func.count()).group_by(deals.c.currency).order_by(func.count().desc())
        ).first()
    return "" if row is None else str(row[0])
