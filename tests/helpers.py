"""Small helpers shared by the test modules."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, select

from voronka.store.schema import metadata


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every workspace table, in primary-key order: compare two dumps to see what was written."""
    out = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            order = list(table.primary_key.columns) or list(table.columns)
            kept = [c for c in table.columns if not c.info.get("derived")]  # e.g. pipelines.catalogue_version
            out[table.name] = [tuple(r) for r in conn.execute(select(*kept).order_by(*order))]
    return out


def dump_url(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """:func:`dump` through a fresh engine of its own, as another process would see the workspace."""
    engine = create_engine(url)
    try:
        return dump(engine)
    finally:
        engine.dispose()
