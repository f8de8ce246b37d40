"""`voronka deal add|move|show|activity`."""

from __future__ import annotations

from dataclasses import asdict

import typer
from rich.table import Table

from voronka.cli._common import FORMAT_OPTION, Format, guard, out, print_csv, print_json, when, workspace
from voronka.domain.deal import classify_move
from voronka.errors import InputError

app = typer.Typer(help="Deals: add, move through stages, show with history.", no_args_is_help=True)


@app.command("add")
@guard
def add(
    pipeline: str = typer.Option(..., help="Pipeline name or id."),
    title: str = typer.Option(..., help="The deal's title."),
    owner: str = typer.Option(None, help="Responsible manager (created if new)."),
    amount: str = typer.Option(None, help="Amount, e.g. 150000 or '1 234,50'."),
    currency: str = typer.Option("RUB", help="ISO currency code."),
    source: str = typer.Option(None, help="Source / channel."),
    segment: str = typer.Option(None, help="Customer segment."),
    at: str = typer.Option(None, help="Creation time, ISO 8601; default now."),
    external_id: str = typer.Option(None, "--external-id", help="Id in another system (unique)."),
    stage: str = typer.Option(None, help="Start stage; default the first open stage."),
) -> None:
    """Add a deal; prints the new deal's id alone."""
    d = workspace().add_deal(
        pipeline,
        title,
        owner=owner,
        amount=amount,
        currency=currency,
        source=source,
        segment=segment,
        at=when(at),
        external_id=external_id,
        stage=stage,
    )
    typer.echo(d.id)


@app.command("move")
@guard
def move(
    deal_id: int = typer.Argument(..., help="Deal id."),
    stage: str = typer.Argument(..., help="Target stage name."),
    at: str = typer.Option(None, help="Time of the move, ISO 8601; default now."),
    reason: str = typer.Option(None, help="Loss reason (for a move to a lost stage)."),
    by: str = typer.Option(None, help="Who moved it."),
    comment: str = typer.Option(None, help="A comment kept with the move."),
    pipeline: str = typer.Option(None, help="Target pipeline, to move the deal to another pipeline."),
) -> None:
    """Move a deal to a stage (forward, skip, back, won, lost with a reason, re-open)."""
    ws = workspace()
    before = ws.deal(deal_id)
    m = ws.move_deal(deal_id, stage, at=when(at), reason=reason, by=by, comment=comment, pipeline=pipeline)
    _, src = ws.stage_of(before.stage_id)
    _, dst = ws.stage_of(m.stage_id)
    out().print(f"Deal {deal_id}: {src.name} → {dst.name} ({classify_move(src, dst).value}) at {m.at.isoformat()}")


@app.command("show")
@guard
def show(
    deal_id: int = typer.Argument(None, help="Deal id."),
    external_id: str = typer.Option(None, "--external-id", help="Find the deal by its external id."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Show a deal with its stage history and activities."""
    ws = workspace()
    if (deal_id is None) == (external_id is None):
        raise InputError("Give a deal id or --external-id (one of them).")
    d = ws.deal(deal_id) if deal_id is not None else ws.deal_by_external_id(external_id)
    pipe, cur = ws.stage_of(d.stage_id)
    history = []
    prev = None
    for m in ws.history(d.id):
        _, dst = ws.stage_of(m.stage_id)
        history.append(
            {
                "at": m.at.isoformat(),
                "from": prev.name if prev else None,
                "to": dst.name,
                "kind": classify_move(prev, dst).value,
                "author": m.author,
                "reason": m.reason,
                "comment": m.comment,
            }
        )
        prev = dst
    acts = [asdict(a) for a in ws.activities(d.id)]
    data = {**asdict(d), "pipeline": pipe.name, "stage": cur.name, "history": history, "activities": acts}
    if fmt is Format.json:
        return print_json(data)
    if fmt is Format.csv:
        import pandas as pd

        return print_csv(pd.DataFrame(history))
    c = out()
    c.print(f"[bold]Deal {d.id}[/bold]: {d.title}")
    c.print(
        f"Pipeline {pipe.name!r}, stage {cur.name!r} since {d.stage_since.isoformat()} · "
        f"owner {d.owner or '—'} · "
        f"{d.amount if d.amount is not None else '—'} {d.currency} · source {d.source or '—'} · "
        f"segment {d.segment or '—'} · created {d.created_at.isoformat()} · version {d.version}"
        + (f" · external id {d.external_id}" if d.external_id else "")
    )
    t = Table("When (UTC)", "From", "To", "Move", "By", "Reason", "Comment", title="Stage history")
    for h in history:
        t.add_row(*(str(h[k] or "") for k in ("at", "from", "to", "kind", "author", "reason", "comment")))
    c.print(t)
    if acts:
        a = Table("When", "Kind", "Due", "Done", "By", "Note", title="Activities")
        for x in acts:
            a.add_row(
                str(x["at"]),
                x["kind"],
                str(x["due_at"] or ""),
                "yes" if x["done"] else "no",
                x["author"] or "",
                x["note"] or "",
            )
        c.print(a)


@app.command("activity")
@guard
def activity(
    deal_id: int = typer.Argument(..., help="Deal id."),
    kind: str = typer.Option("task", help="call, meeting, message or task."),
    at: str = typer.Option(None, help="When it happened / was set, ISO 8601; default now."),
    due: str = typer.Option(None, help="Due time for a planned activity, ISO 8601."),
    done: bool = typer.Option(False, "--done", help="Already done."),
    by: str = typer.Option(None, help="Who."),
    note: str = typer.Option(None, help="A note."),
) -> None:
    """Log an activity on a deal; prints its id."""
    a = workspace().add_activity(
        deal_id, kind, at=when(at), due_at=when(due, "--due time"), done=done, by=by, note=note
    )
    typer.echo(a.id)
