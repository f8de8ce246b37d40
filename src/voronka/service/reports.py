"""Service-level reports: diagnosis, comparisons, A/B tests, KPIs, cohorts and the monthly audit.

Each function takes a workspace, reads what it needs once and calls the pure analytics in
:mod:`voronka.analytics.diagnosis`. Adapters (CLI, web) call these and only render.
"""

from __future__ import annotations

from datetime import UTC, datetime

from voronka.analytics.diagnosis.abtest import ABTestResult, parse_range, run_abtest
from voronka.analytics.diagnosis.bottleneck import Benchmark, find_bottleneck
from voronka.analytics.diagnosis.cohorts import CohortResult, cohort_table
from voronka.analytics.diagnosis.compare import CompareResult, compare_periods
from voronka.analytics.diagnosis.deals import load_deals
from voronka.analytics.diagnosis.diagnose import DiagnosisResult, build_diagnosis
from voronka.analytics.diagnosis.kpi import KPIResult, compute_kpis
from voronka.analytics.diagnosis.managers import ManagersResult, managers_report
from voronka.domain.parse import parse_time
from voronka.errors import InputError
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


def month_range(text: str) -> tuple[datetime, datetime]:
    """``YYYY-MM`` as [first day, first day of the next month), or ``FROM:TO`` as given (UTC)."""
    if ":" in text and not text.count(":") > 1:
        start, _, end = text.partition(":")
        return parse_time(start, what="period start"), parse_time(end, what="period end")
    try:
        first = datetime.strptime(text, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise InputError(f"Period {text!r}: write a month as YYYY-MM (2026-10) or a range FROM:TO.") from None
    nxt = first.replace(year=first.year + 1, month=1) if first.month == 12 else first.replace(month=first.month + 1)
    return first, nxt


def previous_period(period: tuple[datetime, datetime]) -> tuple[datetime, datetime]:
    """The period of the same length just before ``period`` (the month before, for a calendar month)."""
    start, end = period
    if start.day == 1 and end.day == 1 and (end.month - start.month) % 12 == 1:
        prev = (
            start.replace(year=start.year - 1, month=12) if start.month == 1 else start.replace(month=start.month - 1)
        )
        return prev, start
    return start - (end - start), start


def compare(
    ws: WorkspaceStore,
    pipeline: str | int,
    period: str,
    *,
    vs: str | None = None,
    age_days: float = 30,
    by: str = "source",
    fdr: float = 0.05,
    now: datetime | None = None,
) -> CompareResult:
    """Period ``period`` against ``vs`` (default: the period before), per stage at equal cohort age."""
    b = month_range(period)
    a = month_range(vs) if vs else previous_period(b)
    return compare_periods(load_deals(ws, pipeline), a, b, age_days=age_days, by=by, fdr=fdr, now=now)


def abtest(
    ws: WorkspaceStore,
    pipeline: str | int,
    *,
    by: str | None = None,
    ranges: list[str] | None = None,
    variants: list[str] | None = None,
    stage: str | None = None,
    certainty: float = 0.95,
    max_loss: float = 0.005,
) -> ABTestResult:
    """An A/B test of variants by a deal field or by entry date ranges (``NAME=FROM:TO``)."""
    spans: dict[str, tuple[datetime, datetime]] | None = None
    if ranges:
        spans = {}
        for item in ranges:
            name, start, end = parse_range(item)
            spans[name] = (parse_time(start, what="range start"), parse_time(end, what="range end"))
    return run_abtest(
        load_deals(ws, pipeline),
        by=by,
        ranges=spans,
        variants=variants,
        stage=stage,
        certainty=certainty,
        max_loss=max_loss,
    )


def cohorts(
    ws: WorkspaceStore, pipeline: str | int, *, unit: str = "month", now: datetime | None = None
) -> CohortResult:
    """Entry cohorts × periods since entry → cumulative conversion and revenue."""
    return cohort_table(load_deals(ws, pipeline), unit=unit, now=now)  # type: ignore[arg-type]


def kpi(
    ws: WorkspaceStore,
    pipeline: str | int | None = None,
    *,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    margin: float = 1.0,
    churn: float | None = None,
    now: datetime | None = None,
) -> KPIResult:
    """KPIs by channel and month over the new-client pipelines (or ``pipeline``), with the marketing costs."""
    import pandas as pd
    from sqlalchemy import select

    from voronka.domain.pipeline import ProcessKind
    from voronka.store.schema import costs as costs_table

    pipes = [ws.pipeline(pipeline)] if pipeline is not None else ws.pipelines()
    if pipeline is None:
        new = [p for p in pipes if p.process is ProcessKind.NEW_CLIENTS]
        pipes = new or pipes
    if not pipes:
        raise InputError("The workspace has no pipelines: import deals first (voronka import deals FILE).")
    s, e = _time(start, "--from date"), _time(end, "--to date")
    frames = [load_deals(ws, p.id).frame for p in pipes]
    deals = pd.concat(frames, ignore_index=True)
    repeat = None
    if pipeline is None:
        rep = [p for p in ws.pipelines() if p.process is ProcessKind.REPEAT_SALES]
        if rep:
            rf = pd.concat([load_deals(ws, p.id).between(s, e).frame for p in rep], ignore_index=True)
            repeat = float(rf.loc[rf["status"] == "won", "amount"].sum())
    c = costs_table
    with ws.engine.connect() as conn:
        rows = conn.execute(select(c.c.channel, c.c.start, c.c.end, c.c.amount)).fetchall()
    cost_frame = pd.DataFrame(rows, columns=["channel", "start", "end", "amount"])
    latest = now or (deals["entry"].max().to_pydatetime() if len(deals) else datetime.now(UTC))
    return compute_kpis(
        deals,
        cost_frame,
        pipelines=[p.name for p in pipes],
        now=latest,
        start=s,
        end=e,
        margin=margin,
        churn=churn,
        repeat_revenue=repeat,
    )
