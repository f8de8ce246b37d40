"""Hypothesis strategies: random deal histories, applied through the public Workspace API.

A history is data (so Hypothesis can shrink it): per deal its attributes, a start, and a list of steps. Each
step picks a target relative to where the deal stands then: any other stage of its pipeline (forward, skip,
back, won, lost, re-open) or, once per deal, an open stage of the other pipeline (a deal that comes back to a
pipeline it left is a known engine bug, covered by its own test). Time gaps may be zero (ties in time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from voronka.domain.pipeline import StageKind
from voronka.service.workspace import Workspace

BASE = datetime(2026, 1, 1, tzinfo=UTC)
MAIN = {
    "name": "Sales",
    "stages": ["Request", "Call", "Estimate", "Contract"],
    "lost": ["Lost", "Spam"],
    "reasons": ["Дорого", "No budget", "Chose a competitor"],
}
OTHER = {"name": "Repeat", "stages": ["Offer", "Invoice"], "reasons": ["Дорого"]}
OWNERS = ["Anna", "Boris", "Vera", None]
SOURCES = ["web", "ads", "referral", None]
SEGMENTS = ["b2b", "b2c", None]


@dataclass(frozen=True)
class Step:
    choice: int  # picks the target among the stages the deal can go to from where it stands
    gap_hours: int  # time since the previous move; 0 gives a tie in time
    reason: int  # picks the loss reason, for moves to a lost stage
    shout: bool  # write the reason in upper case (reasons match case-insensitively)


@dataclass(frozen=True)
class DealPlan:
    owner: str | None
    source: str | None
    segment: str | None
    start_hours: int
    first_stage: int  # an open stage of Sales to create the deal in (0 mostly; >0 is a skip at creation)
    steps: tuple[Step, ...]


steps = st.builds(
    Step,
    choice=st.integers(0, 1_000),
    gap_hours=st.one_of(st.just(0), st.integers(1, 24 * 20)),
    reason=st.integers(0, 10),
    shout=st.booleans(),
)
deal_plans = st.builds(
    DealPlan,
    owner=st.sampled_from(OWNERS),
    source=st.sampled_from(SOURCES),
    segment=st.sampled_from(SEGMENTS),
    start_hours=st.integers(0, 24 * 90),
    first_stage=st.sampled_from([0, 0, 0, 1, 2]),
    steps=st.lists(steps, max_size=7).map(tuple),
)
histories = st.lists(deal_plans, min_size=1, max_size=10)


def setup_pipelines(ws: Workspace) -> None:
    for spec in (MAIN, OTHER):
        spec = dict(spec)
        ws.create_pipeline(spec.pop("name"), **spec)


def apply_history(ws: Workspace, plans: list[DealPlan]) -> list[int]:
    """Create the pipelines and play the plans; return the deal ids."""
    setup_pipelines(ws)
    pipes = {p.name: p for p in ws.pipelines()}
    ids = []
    for i, plan in enumerate(plans):
        at = BASE + timedelta(hours=plan.start_hours)
        main = pipes[MAIN["name"]]
        deal = ws.add_deal(
            main.name,
            f"Deal {i}",
            owner=plan.owner,
            source=plan.source,
            segment=plan.segment,
            at=at,
            stage=main.open_stages[plan.first_stage].name,
        )
        pipe, stage_id = main, deal.stage_id
        for step in plan.steps:
            options = [(pipe, s) for s in pipe.stages if s.id != stage_id]
            if pipe is main:
                options += [(pipes[OTHER["name"]], s) for s in pipes[OTHER["name"]].open_stages]
            dst_pipe, dst = options[step.choice % len(options)]
            reason = None
            if dst.kind is StageKind.LOST:
                reason = dst_pipe.reasons[step.reason % len(dst_pipe.reasons)]
                reason = reason.upper() if step.shout else reason
            at += timedelta(hours=step.gap_hours)
            ws.move_deal(
                deal.id,
                dst.name,
                at=at,
                reason=reason,
                pipeline=dst_pipe.name if dst_pipe is not pipe else None,
            )
            pipe, stage_id = dst_pipe, dst.id
        ids.append(deal.id)
    return ids
