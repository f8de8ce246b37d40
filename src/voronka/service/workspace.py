"""The workspace as users see it: the store's reads and writes plus the reports."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from voronka.analytics.stage_funnel import GroupBy, StageFunnelQuery, StageFunnelResult, run_stage_funnel
from voronka.analytics.stuck import StuckResult, find_stuck
from voronka.domain.parse import parse_time
from voronka.store.workspace import WorkspaceStore

if TYPE_CHECKING:
    from voronka.analytics.diagnosis.diagnose import DiagnosisResult


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
