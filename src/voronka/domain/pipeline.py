"""Pipelines (funnels) and their ordered stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from voronka.errors import InputError, NotFoundError


class StageKind(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class ProcessKind(StrEnum):
    """The business process a pipeline serves; statistics are never mixed across pipelines."""

    NEW_CLIENTS = "new_clients"
    REPEAT_SALES = "repeat_sales"
    WIN_BACK = "win_back"
    CUSTOM = "custom"


@dataclass(frozen=True, slots=True)
class Stage:
    """A stage of a pipeline.

    ``position`` orders the stages: open stages are 0..n-1, the won stage is n, lost stages follow it.
    ``sla_days`` is how long a deal may sit in the stage before it counts as stuck (None: no limit).
    """

    id: int
    pipeline_id: int
    name: str
    position: int
    kind: StageKind
    sla_days: float | None = None

    @property
    def is_open(self) -> bool:
        return self.kind is StageKind.OPEN


@dataclass(frozen=True, slots=True)
class Pipeline:
    """A funnel for one business process: open stages in order, one won stage, one or more lost stages."""

    id: int
    name: str
    process: ProcessKind
    reason_required: bool
    stages: tuple[Stage, ...]
    reasons: tuple[str, ...] = field(default=())
    reason_ids: tuple[int, ...] = field(default=())

    @property
    def open_stages(self) -> tuple[Stage, ...]:
        return tuple(s for s in self.stages if s.kind is StageKind.OPEN)

    @property
    def won_stage(self) -> Stage:
        return next(s for s in self.stages if s.kind is StageKind.WON)

    @property
    def lost_stages(self) -> tuple[Stage, ...]:
        return tuple(s for s in self.stages if s.kind is StageKind.LOST)

    def stage(self, name_or_id: str | int) -> Stage:
        """Find a stage by id, exact name, or case-insensitive name."""
        for s in self.stages:
            if s.id == name_or_id or s.name == name_or_id:
                return s
        if isinstance(name_or_id, str):
            if name_or_id.isdigit():
                return self.stage(int(name_or_id))
            folded = name_or_id.casefold()
            for s in self.stages:
                if s.name.casefold() == folded:
                    return s
        names = ", ".join(repr(s.name) for s in self.stages)
        raise NotFoundError(f"Stage {name_or_id!r} is not in pipeline {self.name!r}. Use one of: {names}.")

    def reason(self, name: str) -> str:
        """Return the catalogue spelling of a loss reason, matching case-insensitively."""
        for r in self.reasons:
            if r.casefold() == name.strip().casefold():
                return r
        if not self.reasons:
            raise InputError(
                f"Pipeline {self.name!r} has no loss reasons, so {name!r} cannot be used. "
                f"Add reasons to the pipeline first."
            )
        names = ", ".join(repr(r) for r in self.reasons)
        raise NotFoundError(
            f"Loss reason {name!r} is not in the catalogue of pipeline {self.name!r}. Use one of: {names}."
        )


def reason_id_of(pipe: Pipeline, name: str) -> int:
    """The id of a loss reason in the pipeline's catalogue (matched as :meth:`Pipeline.reason` matches)."""
    return pipe.reason_ids[pipe.reasons.index(pipe.reason(name))]


def check_stage_layout(open_names: list[str], won: str, lost: list[str]) -> None:
    """Refuse a pipeline layout that could not be a funnel."""
    if not open_names:
        raise InputError('A pipeline needs at least one open stage, e.g. --stages "Request,Call,Contract".')
    if not lost:
        raise InputError("A pipeline needs at least one lost stage, e.g. --lost Lost.")
    names = [*open_names, won, *lost]
    for n in names:
        if not n.strip():
            raise InputError(f"Stage names cannot be empty; got the list {names!r}.")
    seen: set[str] = set()
    for n in names:
        key = n.strip().casefold()
        if key in seen:
            raise InputError(f"Stage name {n!r} is used twice in the pipeline; give each stage its own name.")
        seen.add(key)
