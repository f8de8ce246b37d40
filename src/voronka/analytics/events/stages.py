"""CRM stages as funnel steps: "visit → request → contract → paid" as one funnel.

A :class:`StageStep` is reached when a deal of a workspace pipeline reaches the stage — entered it or a later open
stage, or was won (a skipped stage counts as passed, as in the stage funnel) — at the time of the first such move.
The deal belongs to the entity whose events carry the deal's key in the property ``FunnelQuery.crm_key``: the
deal's external id, or else its Voronka id. Each (entity, deal, stage step) becomes one synthetic event row, so
every funnel rule applies to stage steps unchanged (window, order, ties, breakdown).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from voronka.store.workspace import WorkspaceStore

STAGE_PREFIX = "\x1fstage:"


@dataclass(frozen=True)
class StageStep:
    """A funnel step reached when the entity's deal in ``pipeline`` reaches ``stage`` (or a later one)."""

    pipeline: str | int
    stage: str
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.stage

    @property
    def event(self) -> str:
        """The synthetic event name the stage rows carry."""
        return f"{STAGE_PREFIX}{self.pipeline}:{self.stage}"


def stage_rows(store: WorkspaceStore, steps: list[StageStep]) -> pd.DataFrame:
    """One row per (deal key, stage step): ``key`` (text), ``voronka_t`` (µs), ``event`` (the synthetic name)."""
    import pandas as pd
    from sqlalchemy import select

    from voronka.analytics._log import load_pipeline_log
    from voronka.domain.pipeline import StageKind
    from voronka.store.schema import deals

    frames = []
    with store._read() as conn:
        keys = {r.id: r.external_id or str(r.id) for r in conn.execute(select(deals.c.id, deals.c.external_id))}
    for step in steps:
        pipe = store.pipeline(step.pipeline)
        target = pipe.stage(step.stage)
        n_open = len(pipe.open_stages)
        rank = {s.id: (n_open if s.kind is StageKind.WON else s.position if s.is_open else -1) for s in pipe.stages}
        need = n_open if target.kind is StageKind.WON else target.position
        log = load_pipeline_log(store, pipe.id)
        reached = np.array([rank.get(int(s), -1) >= need for s in log.move_stage], dtype=bool)
        deal, at = log.move_deal[reached], log.move_at[reached]
        if len(deal) == 0:
            continue
        first = pd.DataFrame({"deal": deal, "t": at}).groupby("deal", sort=False)["t"].min()
        frames.append(
            pd.DataFrame(
                {
                    "key": [keys.get(int(d), str(int(d))) for d in first.index],
                    "voronka_t": first.to_numpy(dtype=np.int64),
                    "event": step.event,
                }
            )
        )
    if not frames:
        return pd.DataFrame({"key": pd.Series([], dtype=object), "voronka_t": [], "event": []}).astype(
            {"voronka_t": "int64"}
        )
    return pd.concat(frames, ignore_index=True)


def crm_union_sql(con: Any, source: Any, q: Any, rel_select: str, ident: Any) -> str:
    """``rel_select`` (rows with ``voronka_t``) plus the stage rows of the entities whose events carry a deal key."""
    store = source.crm if source.crm is not None else source.data
    rows = stage_rows(store, [s for s in q.stage_steps])
    con.register("voronka_stage_rows", rows)
    ent, ev, key = ident(source.entity), ident(source.event), ident(q.crm_key)
    pairs = f"SELECT DISTINCT {ent} AS voronka_e, CAST({key} AS VARCHAR) AS voronka_key FROM {rel_select} AS r"
    stages = (
        f"SELECT p.voronka_e AS {ent}, s.event AS {ev}, s.voronka_t AS voronka_t, TRUE AS voronka_stage "
        f"FROM ({pairs} WHERE {key} IS NOT NULL) AS p JOIN voronka_stage_rows AS s ON p.voronka_key = s.key"
    )
    return f"(SELECT *, FALSE AS voronka_stage FROM {rel_select} AS r UNION ALL BY NAME {stages})"
