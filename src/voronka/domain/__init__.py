"""Pure types and rules of funnels and deals: no I/O, no SQL."""

from voronka.domain.deal import Activity, ActivityKind, Deal, MoveKind, StageMove, classify_move
from voronka.domain.parse import parse_amount, parse_time
from voronka.domain.pipeline import Pipeline, ProcessKind, Stage, StageKind
from voronka.domain.templates import TEMPLATES, PipelineTemplate, get_template

__all__ = [
    "TEMPLATES",
    "Activity",
    "ActivityKind",
    "Deal",
    "MoveKind",
    "Pipeline",
    "PipelineTemplate",
    "ProcessKind",
    "Stage",
    "StageKind",
    "StageMove",
    "classify_move",
    "get_template",
    "parse_amount",
    "parse_time",
]
