"""Scenarios written as data, built through the public Workspace API (``add_deal`` + ``move_deal``).

A scenario::

    {
        "pipeline": {"name": "Sales", "stages": ["Request", "Estimate", "Contract"], "reasons": ["Дорого"]},
        "pipelines": [...],            # optional further pipelines (deals may move into them)
        "deals": [
            {"owner": "Anna", "source": "web", "segment": "b2b", "amount": "1000",
             "path": [("Request", "2026-01-01"), ("Estimate", "2026-01-03"), ("Lost", "2026-01-04", "Дорого")]},
        ],
    }

The first step of a path creates the deal in that stage; every later step is a move. A step is
``(stage, time)`` or ``(stage, time, loss_reason)``; ``stage`` is a stage name of the deal's current pipeline,
or ``(pipeline, stage)`` to move the deal to another pipeline. Times are ISO dates or date-times in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from voronka.service.workspace import Workspace

FIRST_KEYS = ("owner", "source", "segment", "amount", "currency", "external_id")


def T(text: str) -> datetime:  # noqa: N802 - short on purpose: scenario tables are full of times
    """An aware UTC datetime from an ISO date or date-time, parsed independently of Voronka."""
    dt = datetime.fromisoformat(text)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def create_pipelines(ws: Workspace, scenario: dict[str, Any]) -> None:
    specs = ([scenario["pipeline"]] if "pipeline" in scenario else []) + list(scenario.get("pipelines", []))
    for spec in specs:
        spec = dict(spec)
        name = spec.pop("name")
        if "sla" in spec:
            spec["sla_days"] = spec.pop("sla")
        ws.create_pipeline(name, **spec)


def _target(step_stage: str | tuple[str, str]) -> tuple[str | None, str]:
    if isinstance(step_stage, tuple):
        return step_stage[0], step_stage[1]
    return None, step_stage


def build_scenario(ws: Workspace, scenario: dict[str, Any]) -> list[int]:
    """Create the scenario's pipelines and deals; return the deal ids in the scenario's order."""
    create_pipelines(ws, scenario)
    default = (scenario.get("pipeline") or scenario["pipelines"][0])["name"]
    ids = []
    for i, spec in enumerate(scenario["deals"]):
        path = spec["path"]
        first_pipe, first_stage = _target(path[0][0])
        deal = ws.add_deal(
            first_pipe or spec.get("pipeline", default),
            spec.get("title", f"Deal {i + 1}"),
            stage=first_stage,
            at=T(path[0][1]),
            reason=path[0][2] if len(path[0]) > 2 else None,
            **{k: spec[k] for k in FIRST_KEYS if k in spec},
        )
        for step in path[1:]:
            pipe, stage = _target(step[0])
            ws.move_deal(deal.id, stage, at=T(step[1]), reason=step[2] if len(step) > 2 else None, pipeline=pipe)
        ids.append(deal.id)
    return ids
