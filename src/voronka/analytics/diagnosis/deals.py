"""One row per deal of a pipeline, with what the diagnosis needs: where it got to, when, and what it is worth.

Built from the move log with the stage funnel's own per-deal facts, so "reached" and "passed" mean exactly what
they mean in ``voronka funnel`` (implied counting: a skip passes the skipped stages).

Columns of :attr:`DealTable.frame`:

- ``deal_id``, ``entry`` (UTC time the deal entered the pipeline), ``owner``, ``source``, ``segment``,
  ``amount`` (float, NaN when unknown), ``custom`` (dict of custom fields);
- ``status``: ``open``, ``won``, ``lost`` or ``moved`` (now in another pipeline);
- ``max_pos``: the furthest stage reached (0..n-1 open stages, n = won);
- ``stop_pos``: where a lost or moved-out deal stopped (else -1); ``cur_pos``: the stage of an open deal;
- ``reason``: the loss reason of a lost deal;
- ``reach_0`` … ``reach_n``: when the deal first reached stage k (implied), NaT when it never did;
- ``closed_at``: when a won or lost deal got there (NaT for open ones);
- ``stay_k``: completed time in open stage k in days (NaN when none), as in the funnel's time in stage;
- ``first_call``: the first call done on the deal (NaT when none).

*Decided at stage k*: reached k and either passed it or stopped there (lost, moved out); a deal still open at
or before k is undecided (censored) and not counted in the stage's conversion.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from voronka.analytics._log import load_pipeline_log
from voronka.analytics.stage_funnel import _deal_facts, _stage_positions
from voronka.domain.deal import ActivityKind
from voronka.domain.pipeline import Pipeline
from voronka.store.schema import activities, deals
from voronka.store.workspace import WorkspaceStore

_STATUS = np.array(["open", "won", "lost", "moved"])
_DAY_US = 86_400 * 1_000_000
_CHUNK = 5_000


@dataclass
class DealTable:
    """A pipeline and one row per deal that ever entered it (see the module docstring for the columns)."""

    pipeline: Pipeline
    frame: pd.DataFrame

    @property
    def n_open(self) -> int:
        """Number of open stages."""
        return len(self.pipeline.open_stages)

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.pipeline.open_stages] + [self.pipeline.won_stage.name]

    def between(self, start: datetime | None, end: datetime | None) -> DealTable:
        """The deals that entered in ``[start, end)``."""
        f = self.frame
        keep = pd.Series(True, index=f.index)
        if start is not None:
            keep &= f["entry"] >= pd.Timestamp(start)
        if end is not None:
            keep &= f["entry"] < pd.Timestamp(end)
        return DealTable(self.pipeline, f[keep].reset_index(drop=True))


def stage_counts(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """Per open stage k: ``reached``, ``passed``, ``decided`` (passed + stopped there), ``stopped`` (lost or moved
    out there) and ``undecided`` (still open at or before k)."""
    max_pos = frame["max_pos"].to_numpy()
    status = frame["status"].to_numpy()
    rows = []
    for k in range(n):
        reached = max_pos >= k
        passed = max_pos > k
        undecided = reached & ~passed & (status == "open")
        rows.append(
            {
                "stage": k,
                "reached": int(reached.sum()),
                "passed": int(passed.sum()),
                "decided": int((reached & ~undecided).sum()),
                "stopped": int((reached & ~passed & ~undecided).sum()),
                "undecided": int(undecided.sum()),
            }
        )
    return pd.DataFrame(rows)


def load_deals(store: WorkspaceStore, pipeline: str | int) -> DealTable:
    """Read ``pipeline``'s deals into a :class:`DealTable`."""
    pipe = store.pipeline(pipeline)
    log = load_pipeline_log(store, pipe.id)
    n = len(pipe.open_stages)
    lookup = _stage_positions(pipe, log)
    pos = lookup[log.move_stage] if len(log.move_stage) else np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, log.move_deal[1:] != log.move_deal[:-1]]) if len(pos) else pos
    facts, sums = _deal_facts(pipe, log, pos, starts, n)
    ids = log.deal_id[facts.index]
    status = _STATUS[facts.status]
    won = facts.status == 1
    closed = np.where((facts.status == 1) | (facts.status == 2), log.deal_since[facts.index], -1)

    reach = _first_reach(log.move_deal, pos, log.move_at, starts, n, won, log.deal_since[facts.index])
    frame = pd.DataFrame(
        {
            "deal_id": ids,
            "entry": _times(facts.entry),
            "owner": [log.user_names.get(int(o), "(none)") for o in facts.owner],
            "source": log.deal_source.take(facts.index).fill_null("(none)").to_pylist() if len(ids) else [],
            "segment": log.deal_segment.take(facts.index).fill_null("(none)").to_pylist() if len(ids) else [],
            "status": status,
            "max_pos": facts.max_pos,
            "stop_pos": facts.end_pos,
            "cur_pos": facts.cur_pos,
            "reason": [log.reason_names.get(int(r), "(no reason)") if r >= 0 else None for r in facts.reason],
            "closed_at": _times(closed),
        }
    )
    for k in range(n + 1):
        frame[f"reach_{k}"] = _times(reach[:, k])
    for k, (total, count) in enumerate(sums):
        frame[f"stay_{k}"] = np.where(count > 0, total / _DAY_US, np.nan)
    amount, custom = _amounts(store, ids)
    frame["amount"] = amount
    frame["custom"] = custom
    frame["first_call"] = _times(_first_calls(store, ids))
    return DealTable(pipe, frame)


def _times(us: np.ndarray) -> pd.Series:
    """Microseconds since the epoch (negative: none) as UTC timestamps with NaT."""
    arr = np.asarray(us, dtype=np.int64)
    out = pd.to_datetime(np.where(arr >= 0, arr, 0), unit="us", utc=True)
    return pd.Series(out).where(arr >= 0)


def _first_reach(
    move_deal: np.ndarray,
    pos: np.ndarray,
    at: np.ndarray,
    starts: np.ndarray,
    n: int,
    won: np.ndarray,
    since: np.ndarray,
) -> np.ndarray:
    """First time each deal was in stage k or a later open stage (or won now, at its win): -1 when never."""
    big = np.iinfo(np.int64).max
    out = np.full((len(starts), n + 1), big, dtype=np.int64)
    if len(pos):
        row = np.cumsum(np.r_[0, (move_deal[1:] != move_deal[:-1]).astype(np.int64)])
        is_open = (pos >= 0) & (pos < n)
        for k in range(n):
            m = is_open & (pos >= k)
            np.minimum.at(out[:, k], row[m], at[m])
    out[won, :] = np.minimum(out[won, :], since[won][:, None])
    return np.where(out == big, -1, out)


def _amounts(store: WorkspaceStore, ids: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    amount = np.full(len(ids), np.nan)
    custom: list[dict] = [{} for _ in ids]
    where = {int(d): i for i, d in enumerate(ids)}
    with store.engine.connect() as conn:
        for part in _chunks(ids):
            rows = conn.execute(select(deals.c.id, deals.c.amount, deals.c.custom).where(deals.c.id.in_(part)))
            for r in rows:
                i = where[int(r.id)]
                if r.amount is not None:
                    amount[i] = float(r.amount)
                custom[i] = dict(r.custom or {})
    return amount, custom


def _first_calls(store: WorkspaceStore, ids: np.ndarray) -> np.ndarray:
    out = np.full(len(ids), -1, dtype=np.int64)
    where = {int(d): i for i, d in enumerate(ids)}
    a = activities
    with store.engine.connect() as conn:
        for part in _chunks(ids):
            stmt = (
                select(a.c.deal_id, func.min(a.c.at).label("at"))
                .where(a.c.deal_id.in_(part), a.c.kind == ActivityKind.CALL.value, a.c.done.is_(True))
                .group_by(a.c.deal_id)
            )
            for r in conn.execute(stmt):
                out[where[int(r.deal_id)]] = _to_us(r.at)
    return out


def _to_us(value: datetime) -> int:
    from voronka.store.types import to_micros

    return to_micros(value)


def _chunks(ids: np.ndarray) -> list[list[int]]:
    return [ids[i : i + _CHUNK].tolist() for i in range(0, len(ids), _CHUNK)]
