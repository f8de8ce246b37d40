"""Deals, the moves that carry them through stages, and activities on them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from voronka.domain.pipeline import Stage, StageKind


class MoveKind(StrEnum):
    """What a move did, read off the two stages it joins."""

    CREATE = "create"
    FORWARD = "forward"
    SKIP = "skip"
    BACK = "back"
    WON = "won"
    LOST = "lost"
    REOPEN = "reopen"
    TRANSFER = "transfer"
    SAME = "same"


def classify_move(src: Stage | None, dst: Stage) -> MoveKind:
    """Name the kind of a move from ``src`` (None when the deal is created) to ``dst``.

    >>> from voronka.domain.pipeline import Stage, StageKind
    >>> a, c = Stage(1, 1, "A", 0, StageKind.OPEN), Stage(3, 1, "C", 2, StageKind.OPEN)
    >>> classify_move(a, c)
    <MoveKind.SKIP: 'skip'>
    """
    if src is None:
        return MoveKind.CREATE
    if src.pipeline_id != dst.pipeline_id:
        return MoveKind.TRANSFER
    if src.id == dst.id:
        return MoveKind.SAME
    if dst.kind is StageKind.WON:
        return MoveKind.WON
    if dst.kind is StageKind.LOST:
        return MoveKind.LOST
    if src.kind is not StageKind.OPEN:
        return MoveKind.REOPEN
    if dst.position == src.position + 1:
        return MoveKind.FORWARD
    return MoveKind.SKIP if dst.position > src.position else MoveKind.BACK


@dataclass(frozen=True, slots=True)
class StageMove:
    """One entry of the append-only move log: the deal entered ``stage_id`` at ``at``."""

    id: int
    deal_id: int
    pipeline_id: int
    from_stage_id: int | None
    stage_id: int
    at: datetime
    author: str | None = None
    reason: str | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Deal:
    """A deal as stored: its current stage is a cache of the move log."""

    id: int
    pipeline_id: int
    stage_id: int
    title: str
    owner: str | None
    amount: Decimal | None
    currency: str
    source: str | None
    segment: str | None
    created_at: datetime
    stage_since: datetime
    version: int
    external_id: str | None = None
    external_source: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)


class ActivityKind(StrEnum):
    CALL = "call"
    MEETING = "meeting"
    MESSAGE = "message"
    TASK = "task"


@dataclass(frozen=True, slots=True)
class Activity:
    """A call, meeting, message or task on a deal.

    An open activity due in the future keeps a deal from being stuck.
    """

    id: int
    deal_id: int
    kind: ActivityKind
    at: datetime
    due_at: datetime | None
    done: bool
    author: str | None = None
    note: str | None = None
