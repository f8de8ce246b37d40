"""Tables and reports out: CSV (`;` + UTF-8 with BOM for the Russian locale, `,` otherwise), XLSX and JSON."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select
from sqlalchemy.orm import aliased

from voronka.errors import InputError
from voronka.store.schema import (
    activities,
    costs,
    deals,
    events,
    loss_reasons,
    pipelines,
    stage_moves,
    stages,
    users,
)
from voronka.store.workspace import WorkspaceStore

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("csv", "xlsx", "json")
TABLES = ("deals", "moves", "activities", "events", "costs", "pipelines", "users")


def write_frame(
    frame: pd.DataFrame,
    path: str | Path,
    *,
    fmt: str | None = None,
    locale: str = "en",
    encoding: str | None = None,
) -> Path:
    """Write a table in the format its extension (or ``fmt``) names."""
    p = Path(path)
    kind = (fmt or p.suffix.lstrip(".")).lower()
    if kind not in FORMATS:
        raise InputError(f"Unknown export format {kind!r} for {p.name}: use .csv, .xlsx or .json (or --format).")
    flat = frame.copy()
    for col in flat.columns:
        if flat[col].map(lambda v: isinstance(v, dict | list)).any():
            flat[col] = flat[col].map(lambda v: json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v)
    if kind == "csv":
        ru = locale.startswith("ru")
        if ru:  # Russian Excel reads decimal commas; Decimal values are not floats, so convert them here
            for col in flat.columns:
                if flat[col].map(lambda v: isinstance(v, Decimal)).any():
                    flat[col] = flat[col].map(lambda v: str(v).replace(".", ",") if isinstance(v, Decimal) else v)
        enc = encoding or ("utf-8-sig" if ru else "utf-8")
        tmp = p.with_name(p.name + ".part")
        try:
            flat.to_csv(
                tmp,
                sep=";" if ru else ",",
                decimal="," if ru else ".",
                index=False,
                encoding=enc,
                lineterminator="\r\n",
                date_format="%d.%m.%Y %H:%M:%S" if ru else "%Y-%m-%d %H:%M:%S",
            )
        except UnicodeEncodeError as exc:
            tmp.unlink(missing_ok=True)
            raise InputError(
                f"A value cannot be written in {enc}: {exc.object[exc.start : exc.end]!r}; "
                f"export as UTF-8 (drop --encoding)."
            ) from exc
        tmp.replace(p)
    elif kind == "xlsx":
        for col in flat.select_dtypes(include=["datetimetz"]).columns:
            flat[col] = flat[col].dt.tz_localize(None)
        flat.to_excel(p, index=False, engine="openpyxl")
    else:
        p.write_text(flat.to_json(orient="records", force_ascii=False, date_format="iso", indent=2), encoding="utf-8")
    return p


def _query(name: str) -> Select[Any]:
    owner, author = aliased(users), aliased(users)
    src, dst = aliased(stages), aliased(stages)
    if name == "deals":
        return (
            select(
                deals.c.id,
                deals.c.external_source,
                deals.c.external_id,
                deals.c.title,
                pipelines.c.name.label("pipeline"),
                dst.c.name.label("stage"),
                dst.c.kind.label("stage_kind"),
                deals.c.stage_since,
                owner.c.name.label("owner"),
                deals.c.amount,
                deals.c.currency,
                deals.c.source,
                deals.c.segment,
                deals.c.created_at,
                deals.c.custom,
                deals.c.version,
                deals.c.snapshot,
            )
            .join_from(deals, pipelines, pipelines.c.id == deals.c.pipeline_id)
            .join(dst, dst.c.id == deals.c.stage_id)
            .outerjoin(owner, owner.c.id == deals.c.owner_id)
            .order_by(deals.c.id)
        )
    if name == "moves":
        m = stage_moves
        return (
            select(
                m.c.id,
                m.c.deal_id,
                deals.c.external_id,
                pipelines.c.name.label("pipeline"),
                src.c.name.label("from_stage"),
                dst.c.name.label("stage"),
                m.c.at,
                author.c.name.label("by"),
                loss_reasons.c.name.label("reason"),
                m.c.comment,
            )
            .join_from(m, deals, deals.c.id == m.c.deal_id)
            .join(pipelines, pipelines.c.id == m.c.pipeline_id)
            .join(dst, dst.c.id == m.c.stage_id)
            .outerjoin(src, src.c.id == m.c.from_stage_id)
            .outerjoin(author, author.c.id == m.c.author_id)
            .outerjoin(loss_reasons, loss_reasons.c.id == m.c.reason_id)
            .order_by(m.c.deal_id, m.c.id)
        )
    if name == "activities":
        a = activities
        return (
            select(
                a.c.id,
                a.c.deal_id,
                a.c.kind,
                a.c.at,
                a.c.due_at,
                a.c.done,
                author.c.name.label("by"),
                a.c.note,
            )
            .outerjoin(author, author.c.id == a.c.author_id)
            .order_by(a.c.id)
        )
    if name == "pipelines":
        return (
            select(
                pipelines.c.id.label("pipeline_id"),
                pipelines.c.name.label("pipeline"),
                pipelines.c.process,
                stages.c.position,
                stages.c.name.label("stage"),
                stages.c.kind,
                stages.c.sla_days,
            )
            .join_from(pipelines, stages, stages.c.pipeline_id == pipelines.c.id)
            .order_by(pipelines.c.id, stages.c.position)
        )
    if name == "users":  # the web app's login columns (password hashes above all) are not for export
        return select(users.c.id, users.c.name, users.c.email, users.c.role, users.c.active).order_by(users.c.id)
    table = {"events": events, "costs": costs}[name]
    return select(table).order_by(table.c.id)


def table_frame(store: WorkspaceStore, name: str, *, pipeline: str | None = None) -> pd.DataFrame:
    """A workspace table as a DataFrame, with names instead of ids where people read them."""
    import pandas as pd

    if name not in TABLES:
        raise InputError(f"Unknown table {name!r}: use one of {', '.join(TABLES)}.")
    stmt = _query(name)
    if pipeline is not None and name in ("deals", "moves", "pipelines"):
        stmt = stmt.where(pipelines.c.id == store.pipeline(pipeline).id)
    with store.engine.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
