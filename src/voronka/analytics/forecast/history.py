"""A pipeline's move log as the flow model sees it, and what it looked like as of any past time.

Terms:

- **Category** of a move: the open stage's index ``0 … n-1``, ``n`` for the won stage, ``n+1`` for "closed
  without a win" (a lost stage, or a stage of another pipeline: the deal left).
- **Stay**: a visit of a deal to an open stage, from the move into it to the deal's next move (an *exit*, with its
  destination category) or, when there is no next move yet, to the time of the view (*censored*).
- **Entry**: a deal's first move in the pipeline (its creation there, or its arrival from another pipeline).

Everything here is a pure function of the arrays, so a view "as of" a past time uses only the moves before it:
that is what the backtest needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from voronka.analytics._log import PipelineLog, codes_of
from voronka.domain.pipeline import Pipeline, StageKind

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]
DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True)
class FlowHistory:
    """A pipeline's log for forecasting: moves in (deal, time) order, by deal index and category.

    ``deal_amount`` is NaN where a deal has no amount. ``groups`` maps a breakdown name (``owner``, ``source``) to
    per-deal codes and their labels.
    """

    pipeline: str
    stages: tuple[str, ...]
    move_deal: I64
    move_cat: I64
    move_at: I64
    deal_amount: F64
    currency: str
    groups: dict[str, tuple[I64, list[str]]] = field(default_factory=dict)
    deal_ids: I64 | None = None  # the workspace's deal id of each deal index, when read from a workspace
    notes: list[str] = field(default_factory=list)  # what the reader found that every report should say

    @property
    def n(self) -> int:
        """The number of open stages."""
        return len(self.stages)

    @property
    def n_deals(self) -> int:
        return len(self.deal_amount)

    def before(self, as_of: int) -> FlowHistory:
        """The log as it stood at ``as_of`` (microseconds): only the moves strictly before it."""
        keep = self.move_at < as_of
        return FlowHistory(
            self.pipeline,
            self.stages,
            self.move_deal[keep],
            self.move_cat[keep],
            self.move_at[keep],
            self.deal_amount,
            self.currency,
            self.groups,
            self.deal_ids,
            self.notes,
        )


def history_from_log(pipe: Pipeline, log: PipelineLog, amounts: F64, currency: str) -> FlowHistory:
    """Build a :class:`FlowHistory` from a read of the move log; ``amounts`` are in ``log.deal_id`` order."""
    n = len(pipe.open_stages)
    stage_ids = np.array([s.id for s in pipe.stages], dtype=np.int64)
    open_index = {s.id: i for i, s in enumerate(pipe.open_stages)}
    cats = np.array(
        [open_index.get(s.id, n if s.kind is StageKind.WON else n + 1) for s in pipe.stages],
        dtype=np.int64,
    )
    order = np.argsort(stage_ids)
    where = np.searchsorted(stage_ids[order], log.move_stage)
    where = np.minimum(where, len(order) - 1)
    known = stage_ids[order][where] == log.move_stage
    move_cat = np.where(known, cats[order][where], n + 1)  # another pipeline's stage: the deal left
    deal_index = np.searchsorted(log.deal_id, log.move_deal)
    owner_labels = [log.user_names.get(int(i), "(none)") if i >= 0 else "(none)" for i in log.deal_owner]
    owner_codes, owners = codes_of(pa.array(owner_labels, type=pa.string()))
    source_codes, sources = codes_of(log.deal_source)
    return FlowHistory(
        pipeline=pipe.name,
        stages=tuple(s.name for s in pipe.open_stages),
        move_deal=deal_index.astype(np.int64),
        move_cat=move_cat.astype(np.int64),
        move_at=log.move_at,
        deal_amount=amounts,
        currency=currency,
        groups={"owner": (owner_codes, owners), "source": (source_codes, sources)},
        deal_ids=log.deal_id,
    )


@dataclass(frozen=True)
class Stays:
    """Every stay in an open stage up to a view time: stage, duration in days, exited or not, destination."""

    stage: I64
    days: F64
    exited: NDArray[np.bool_]
    dest: I64  # the destination category of an exit; -1 when censored
    deal: I64  # the deal index of the stay


def stays(h: FlowHistory, as_of: int) -> Stays:
    """The stays in open stages of ``h`` (already cut at ``as_of``), censored at ``as_of``."""
    deal, cat, at = h.move_deal, h.move_cat, h.move_at
    has_next = np.r_[deal[1:] == deal[:-1], False] if len(deal) else np.zeros(0, dtype=bool)
    nxt = np.minimum(np.arange(len(deal)) + 1, max(len(deal) - 1, 0))
    is_open = cat < h.n
    end = np.where(has_next, at[nxt], as_of) if len(deal) else at
    dest = np.where(has_next, cat[nxt], -1) if len(deal) else cat
    # A "move" into the stage the deal is already in does not end its stay: such rows are dropped as exits.
    keep = is_open & (dest != cat)
    return Stays(
        stage=cat[keep],
        days=(end[keep] - at[keep]) / DAY_US,
        exited=has_next[keep],
        dest=dest[keep],
        deal=deal[keep],
    )


@dataclass(frozen=True)
class OpenDeals:
    """The deals in an open stage at a view time: their index, stage and days already spent in the stage."""

    index: I64
    stage: I64
    age_days: F64


def open_deals(h: FlowHistory, as_of: int) -> OpenDeals:
    """The deals whose last move before ``as_of`` put them in an open stage."""
    deal = h.move_deal
    if not len(deal):
        return OpenDeals(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    last = np.flatnonzero(np.r_[deal[1:] != deal[:-1], True])
    is_open = h.move_cat[last] < h.n
    last = last[is_open]
    return OpenDeals(deal[last], h.move_cat[last], np.maximum(as_of - h.move_at[last], 0) / DAY_US)


def entries(h: FlowHistory, start: int, end: int) -> tuple[I64, I64]:
    """Deals whose first move (entry) into the pipeline fell in ``[start, end)``: their index and entry stage."""
    deal = h.move_deal
    if not len(deal):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    first = np.flatnonzero(np.r_[True, deal[1:] != deal[:-1]])
    t = h.move_at[first]
    hit = first[(t >= start) & (t < end)]
    return deal[hit], h.move_cat[hit]


def wins(h: FlowHistory, start: int, end: int) -> I64:
    """The deal index of every move into the won stage in ``[start, end)`` (a deal won twice counts twice)."""
    hit = (h.move_cat == h.n) & (h.move_at >= start) & (h.move_at < end)
    return h.move_deal[hit]


def first_time(h: FlowHistory) -> int | None:
    """The time of the earliest move, or None for an empty log."""
    return int(h.move_at.min()) if len(h.move_at) else None
