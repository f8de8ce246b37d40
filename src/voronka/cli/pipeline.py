"""`voronka pipeline create|list|sla`."""

from __future__ import annotations

import typer
from rich.table import Table

from voronka.cli._common import FORMAT_OPTION, Format, guard, out, print_csv, print_json, workspace
from voronka.domain.pipeline import Pipeline
from voronka.errors import InputError

app = typer.Typer(help="Funnels (pipelines) and their stages.", no_args_is_help=True)


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [p.strip() for p in text.split(",") if p.strip()]


def _days(item: str, sla: str) -> float | None:
    """One SLA value of --sla: days, or empty for no SLA."""
    if not item.strip():
        return None
    try:
        return float(item)
    except ValueError:
        raise InputError(
            f'Malformed SLA {item.strip()!r} in --sla {sla!r}: give days per open stage, e.g. "1,2,,5" '
            f"(empty: no SLA for that stage)."
        ) from None


@app.command("create")
@guard
def create(
    name: str = typer.Argument(..., help="The pipeline's name."),
    stages: str = typer.Option(None, help='Open stages in order, comma-separated: "Request,Call,Contract".'),
    template: str = typer.Option(None, help="A stage template: classic5, made-to-order, marketing6."),
    won: str = typer.Option(None, help="Name of the won stage (default Won / template's last stage)."),
    lost: list[str] = typer.Option(None, help="A lost stage; repeat for several (default Lost)."),
    reasons: str = typer.Option(None, help='Loss reasons, comma-separated: "Too expensive,No need".'),
    reason_optional: bool = typer.Option(False, "--reason-optional", help="Allow lost without a reason."),
    process: str = typer.Option("custom", help="new_clients, repeat_sales, win_back or custom."),
    sla: str = typer.Option(None, help='SLA days per open stage, comma-separated: "1,2,5" (empty = none).'),
    lang: str = typer.Option("en", help="Language of template and default stage names: en or ru."),
) -> None:
    """Create a pipeline: open stages in order, then the won stage and one or more lost stages."""
    sla_days = None if sla is None else [_days(x, sla) for x in sla.split(",")]
    p = workspace().create_pipeline(
        name,
        stages=_split(stages),
        template=template,
        won=won,
        lost=lost or None,
        reasons=_split(reasons) or [],
        reason_required=not reason_optional,
        process=process,
        sla_days=sla_days,
        lang=lang,
    )
    out().print(
        f"Created pipeline {p.name!r} (id {p.id}): "
        + " → ".join(s.name for s in p.stages if s.kind != "lost")
        + " | lost: "
        + ", ".join(s.name for s in p.lost_stages)
    )


def _rows(pipes: list[Pipeline]) -> list[dict[str, object]]:
    return [
        {
            "id": p.id,
            "name": p.name,
            "process": p.process.value,
            "reason_required": p.reason_required,
            "stages": [
                {"name": s.name, "kind": s.kind.value, "position": s.position, "sla_days": s.sla_days} for s in p.stages
            ],
            "reasons": list(p.reasons),
        }
        for p in pipes
    ]


@app.command("list")
@guard
def list_(fmt: Format = FORMAT_OPTION) -> None:
    """List pipelines with their stages and loss reasons."""
    rows = _rows(workspace().pipelines())
    if fmt is Format.json:
        return print_json(rows)
    if fmt is Format.csv:
        import pandas as pd

        return print_csv(
            pd.DataFrame(
                [
                    {
                        **r,
                        "stages": " > ".join(s["name"] for s in r["stages"]),  # type: ignore[attr-defined]
                        "reasons": "; ".join(r["reasons"]),
                    }
                    for r in rows
                ]
            )
        )  # type: ignore[arg-type]
    table = Table("ID", "Pipeline", "Process", "Stages (SLA days)", "Loss reasons")
    for r in rows:
        stages = " → ".join(
            f"{s['name']}"
            + (f" ({s['sla_days']:g})" if s["sla_days"] else "")
            + ("" if s["kind"] == "open" else f" ({s['kind']})")
            for s in r["stages"]  # type: ignore[union-attr]
        )
        table.add_row(str(r["id"]), str(r["name"]), str(r["process"]), stages, ", ".join(r["reasons"]))  # type: ignore[arg-type]
    out().print(table)


@app.command("sla")
@guard
def sla(
    pipeline: str = typer.Argument(..., help="Pipeline name or id."),
    stage: str = typer.Argument(..., help="Stage name."),
    days: float = typer.Argument(None, help="Days a deal may sit in the stage; omit to clear."),
) -> None:
    """Set or clear a stage's SLA in days."""
    s = workspace().set_sla(pipeline, stage, days)
    out().print(f"SLA of {s.name!r}: {'none' if s.sla_days is None else f'{s.sla_days:g} days'}")
