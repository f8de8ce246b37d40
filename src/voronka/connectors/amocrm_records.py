"""amoCRM API answers → an :class:`ImportBatch` with the deals' full history.

Statuses are keyed by (pipeline id, status id) everywhere: 142 (won) and 143 (lost) are in every pipeline,
and a lead moved between pipelines keeps its id. The Voronka names given to pipelines and statuses are kept in
the sync state (:class:`Names`), so a status renamed in amoCRM stays the same stage here.

A lead's history is its creation — a move into the status it was created in (the ``value_before`` of its
first ``lead_status_changed`` event, or its status now when it never moved) — then one move per event. An
event whose ``value_after`` names another pipeline is a transfer to that pipeline.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from voronka.io.batch import DealRecord, ImportBatch, MoveRecord, PipelineSpec, RowRef

SOURCE = "amocrm"
WON, LOST = 142, 143
DEFAULT_WON, DEFAULT_LOST = "Успешно реализовано", "Закрыто и не реализовано"
_NO_OPEN = "Новая сделка"

Json = dict[str, Any]


def moment(value: Any) -> datetime | None:
    """amoCRM's unix seconds as an aware UTC datetime (None stays None)."""
    if value is None or value == "":
        return None
    return datetime.fromtimestamp(int(value), UTC)


def lead_ref(lead_id: Any) -> RowRef:
    """Where a lead's deal and moves come from, for problems (one per lead: a bad lead is left out whole)."""
    return RowRef(f"amoCRM lead {lead_id}", None)


@dataclass
class Names:
    """Voronka names of amoCRM pipelines (``"pid"``) and statuses (``"pid:sid"``), kept between syncs."""

    pipelines: dict[str, str] = field(default_factory=dict)
    stages: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, data: Any) -> Names:
        data = data if isinstance(data, dict) else {}
        return cls(dict(data.get("pipelines") or {}), dict(data.get("stages") or {}))

    def dump(self) -> dict[str, dict[str, str]]:
        return {"pipelines": dict(self.pipelines), "stages": dict(self.stages)}


def _unique(given: str, key: int, taken: Iterable[str], fallback: str) -> str:
    name = " ".join(given.split())[:190] or fallback
    return f"{name} (#{key})" if name.casefold() in {t.casefold() for t in taken} else name


class Catalogue:
    """amoCRM pipelines and their statuses, in ``sort`` order, with their names in Voronka.

    Statuses the API no longer lists (deleted in amoCRM, but still in old events) are added as open stages
    named ``amoCRM status N (deleted)``, and unknown pipelines likewise. ``won_stages`` names the won stage of
    pipelines that already exist in the workspace (by casefolded name): a pipeline has one won stage, so
    status 142 is that stage whatever amoCRM calls it.
    """

    def __init__(
        self,
        pipelines: list[Json],
        reasons: list[str],
        names: Names,
        won_stages: dict[str, str] | None = None,
    ) -> None:
        self.names, self.reasons, self._won_stages = names, reasons, won_stages or {}
        self._open: dict[int, list[str]] = {}
        self._closed: dict[tuple[int, int], str] = {}
        for p in sorted(pipelines, key=lambda p: (p.get("sort") or 0, int(p["id"]))):
            self._add(int(p["id"]), str(p.get("name") or ""), ((p.get("_embedded") or {}).get("statuses") or []))

    def _pipeline(self, pid: int, given: str) -> str:
        key = str(pid)
        if key not in self.names.pipelines:
            self.names.pipelines[key] = _unique(given, pid, self.names.pipelines.values(), f"amoCRM pipeline {pid}")
        return self.names.pipelines[key]

    def _status(self, pid: int, sid: int, given: str) -> str:
        key = f"{pid}:{sid}"
        if key not in self.names.stages:
            taken = [n for k, n in self.names.stages.items() if k.split(":")[0] == str(pid)]
            self.names.stages[key] = _unique(given, sid, taken, f"amoCRM status {sid}")
        return self.names.stages[key]

    def _add(self, pid: int, name: str, statuses: list[Json]) -> None:
        existing = self._won_stages.get(self._pipeline(pid, name).casefold())
        if existing is not None:
            self.names.stages.setdefault(f"{pid}:{WON}", existing)
        self._open[pid] = []
        for s in sorted(statuses, key=lambda s: (s.get("sort") or 0, int(s["id"]))):
            sid = int(s["id"])
            stage = self._status(pid, sid, str(s.get("name") or ""))
            if sid in (WON, LOST):
                self._closed[pid, sid] = stage
            else:
                self._open[pid].append(stage)
        for sid, default in ((WON, DEFAULT_WON), (LOST, DEFAULT_LOST)):
            if (pid, sid) not in self._closed:  # not listed: a pipeline deleted in amoCRM
                self._closed[pid, sid] = self._status(pid, sid, default)

    def stage(self, pid: int, sid: int) -> tuple[str, str]:
        """The Voronka (pipeline, stage) names of amoCRM status ``sid`` of pipeline ``pid``."""
        if pid not in self._open:
            self._add(pid, f"amoCRM pipeline {pid} (deleted)", [])
        if (pid, sid) in self._closed:
            return self.names.pipelines[str(pid)], self._closed[pid, sid]
        stage = self._status(pid, sid, f"amoCRM status {sid} (deleted)")
        if stage not in self._open[pid]:
            self._open[pid].append(stage)
        return self.names.pipelines[str(pid)], stage

    def specs(self) -> list[PipelineSpec]:
        """The pipelines as :func:`~voronka.io.apply.apply_batch` creates or completes them."""
        return [
            PipelineSpec(
                name=self.names.pipelines[str(pid)],
                open=opens or [_NO_OPEN],
                won=self._closed[pid, WON],
                lost=[self._closed[pid, LOST]],
                reasons=list(self.reasons),
            )
            for pid, opens in self._open.items()
        ]


def user_names(users: list[Json]) -> dict[int, str]:
    """amoCRM user id → a unique name (a second «Анна» becomes «Анна (#id)»)."""
    out: dict[int, str] = {}
    for u in sorted(users, key=lambda u: int(u["id"])):
        uid = int(u["id"])
        out[uid] = _unique(str(u.get("name") or ""), uid, out.values(), f"amoCRM user {uid}")
    return out


def reason_names(reasons: list[Json]) -> dict[int, str]:
    """amoCRM loss reason id → name, in amoCRM's order."""
    ordered = sorted(reasons, key=lambda r: (r.get("sort") or 0, int(r["id"])))
    return {int(r["id"]): " ".join(str(r.get("name") or "").split()) or f"reason {r['id']}" for r in ordered}


def _who(users: dict[int, str], uid: Any) -> str | None:
    if not uid:
        return None  # 0: amoCRM itself (a robot, Digital Pipeline, an integration)
    return users.get(int(uid), f"amoCRM user {uid}")


def _reason(lead: Json, reasons: dict[int, str]) -> str | None:
    embedded = (lead.get("_embedded") or {}).get("loss_reason")
    if isinstance(embedded, list):
        embedded = embedded[0] if embedded else None
    if isinstance(embedded, dict) and str(embedded.get("name") or "").strip():
        return " ".join(str(embedded["name"]).split())
    rid = lead.get("loss_reason_id")
    return reasons.get(int(rid)) if rid else None


def status_of(values: Any) -> tuple[int, int] | None:
    """(pipeline id, status id) of an event's ``value_before`` / ``value_after``."""
    for v in values or []:
        st = v.get("lead_status") if isinstance(v, dict) else None
        if isinstance(st, dict) and st.get("id") is not None and st.get("pipeline_id") is not None:
            return int(st["pipeline_id"]), int(st["id"])
    return None


@dataclass
class Source:
    """What one sync read from amoCRM."""

    catalogue: Catalogue
    users: dict[int, str]
    reasons: dict[int, str]
    leads: dict[int, Json]
    events: list[Json]


def build_batch(src: Source, *, host: str, known: set[str], currency: str = "RUB") -> ImportBatch:
    """The batch of a sync: every lead read as a deal, its creation (unless ``known``) and its new moves."""
    batch = ImportBatch(source=SOURCE, file=host, history=True)
    batch.columns = {"external_id": "id", "pipeline": "pipeline_id", "stage": "status_id", "at": "created_at"}
    by_lead: dict[int, list[Json]] = defaultdict(list)
    for ev in sorted(src.events, key=lambda e: (int(e["created_at"]), str(e["id"]))):
        by_lead[int(ev["entity_id"])].append(ev)
    for lid in sorted(src.leads):
        lead = src.leads[lid]
        batch.read += 1
        reason = _reason(lead, src.reasons)
        batch.deals.append(_deal(lead, src, reason, currency))
        batch.moves += _moves(lead, by_lead.get(lid, []), src, reason, known)
    gone = sum(len(evs) for lid, evs in by_lead.items() if lid not in src.leads)
    if gone:
        batch.notes["stage change(s) of leads deleted in amoCRM, skipped"] = gone
    batch.pipelines = src.catalogue.specs()
    return batch


def _deal(lead: Json, src: Source, reason: str | None, currency: str) -> DealRecord:
    pid, sid = int(lead["pipeline_id"]), int(lead["status_id"])
    pipe, stage = src.catalogue.stage(pid, sid)
    tags = [str(t.get("name")) for t in (lead.get("_embedded") or {}).get("tags") or [] if t.get("name")]
    price = lead.get("price")
    return DealRecord(
        ref=lead_ref(lead["id"]),
        external_id=str(lead["id"]),
        title=" ".join(str(lead.get("name") or "").split())[:500] or f"Сделка #{lead['id']}",
        pipeline=pipe,
        stage=stage,
        created_at=moment(lead.get("created_at")) or datetime.now(UTC),
        amount=None if price is None else Decimal(str(price)),
        currency=currency,
        owner=_who(src.users, lead.get("responsible_user_id")),
        closed_at=moment(lead.get("closed_at")) if sid in (WON, LOST) else None,
        loss_reason=reason if sid == LOST else None,
        custom={"tags": ", ".join(tags)} if tags else {},
    )


def _moves(lead: Json, events: list[Json], src: Source, reason: str | None, known: set[str]) -> list[MoveRecord]:
    ext, ref = str(lead["id"]), lead_ref(lead["id"])
    moves: list[MoveRecord] = []
    for ev in events:
        after = status_of(ev.get("value_after"))
        if after is not None:
            pipe, stage = src.catalogue.stage(*after)
            moves.append(
                MoveRecord(
                    ref,
                    ext,
                    stage,
                    moment(ev["created_at"]) or datetime.now(UTC),
                    pipe,
                    by=_who(src.users, ev.get("created_by")),
                )
            )
    if ext not in known:
        first = status_of(events[0].get("value_before")) if events else None
        pipe, stage = src.catalogue.stage(*(first or (int(lead["pipeline_id"]), int(lead["status_id"]))))
        at = moment(lead.get("created_at")) or (moves[0].at if moves else datetime.now(UTC))
        at = min([at, *(m.at for m in moves[:1])])
        moves.insert(0, MoveRecord(ref, ext, stage, at, pipe, by=_who(src.users, lead.get("created_by"))))
    if reason and int(lead["status_id"]) == LOST and moves:
        lost = src.catalogue.stage(int(lead["pipeline_id"]), LOST)
        if (moves[-1].pipeline, moves[-1].stage) == lost:
            moves[-1] = dataclasses.replace(moves[-1], reason=reason)
    return moves
