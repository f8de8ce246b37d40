"""Sync a Bitrix24 portal into the workspace: pipelines with their stages, deals, and the stage history.

- Each deal pipeline ("direction", ``crm.category.list``) is a pipeline; its stages (``crm.status.list``,
  ``DEAL_STAGE`` / ``DEAL_STAGE_{id}``) in ``SORT`` order are its open stages (semantics P), its won stage (S)
  and its lost stages (F). Stages are keyed by ``STATUS_ID`` (``C1:WON``), which names the pipeline too.
- Deals (``crm.deal.list``) are upserted by deal ID under the source ``bitrix24`` — the same key the export
  uses — and their history is the stage history (``crm.stagehistory.list``): creation, moves, and moves to
  another pipeline. A deal without history gets the snapshot moves of :mod:`voronka.io.apply`.
- Everything lands in one transaction with the cursor, so a failed or refused sync writes nothing, and the next
  sync reads only later history and changed deals. Syncing twice changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from voronka.connectors.bitrix24_client import Bitrix24Client, Bitrix24Error, Webhook
from voronka.connectors.bitrix24_export import DEFAULT_LOST, DEFAULT_WON, SOURCE
from voronka.connectors.bitrix24_fetch import DEAL_SELECT, Cursor, PortalData, Status, fetch
from voronka.domain.pipeline import StageKind
from voronka.io.apply import ImportSummary, apply_batch
from voronka.io.batch import DealRecord, ImportBatch, MoveRecord, PipelineSpec, RowRef
from voronka.io.values import parse_datetime, parse_decimal
from voronka.store.workspace import WorkspaceStore

DEALS_FILE = "Bitrix24 deals (row = deal ID)"
HISTORY_FILE = "Bitrix24 stage history (row = record ID)"
_COLUMNS = {
    "external_id": "ID",
    "title": "TITLE",
    "pipeline": "CATEGORY_ID",
    "stage": "STAGE_ID",
    "amount": "OPPORTUNITY",
    "created": "DATE_CREATE",
    "closed": "CLOSEDATE",
    "at": "CREATED_TIME",
    "deal": "OWNER_ID",
}
NOTE_DELETED = "stage-history records of deals no longer in Bitrix24 (deleted): skipped"
NOTE_NO_USER = "deals whose responsible user user.get does not list: owner named 'Bitrix24 user ID'"


def state_key(webhook_url: str) -> str:
    return f"bitrix24:{Webhook.parse(webhook_url).host}"


def sync_bitrix24(
    store: WorkspaceStore,
    webhook_url: str,
    *,
    full: bool = False,
    now: datetime | None = None,
    create_missing: bool = False,
    skip_bad_rows: bool = False,
    dry_run: bool = False,
    client: Bitrix24Client | None = None,
) -> ImportSummary:
    """Bring the portal's pipelines, deals and stage history in; see the module docstring.

    ``full`` reads everything again instead of what changed since the last sync. ``client`` is one made for
    ``webhook_url`` (tests pass one with a fake ``sleep``).
    """
    return run_bitrix24_sync(
        store,
        webhook_url,
        full=full,
        now=now,
        create_missing=create_missing,
        skip_bad_rows=skip_bad_rows,
        dry_run=dry_run,
        client=client,
    )[1]


def run_bitrix24_sync(
    store: WorkspaceStore,
    webhook_url: str,
    *,
    full: bool = False,
    now: datetime | None = None,
    create_missing: bool = False,
    skip_bad_rows: bool = False,
    dry_run: bool = False,
    client: Bitrix24Client | None = None,
) -> tuple[ImportBatch, ImportSummary]:
    """:func:`sync_bitrix24`, also returning the batch (for the CLI's reject file and notes)."""
    now = now or datetime.now(UTC)
    own = client is None
    client = client or Bitrix24Client(webhook_url)
    if client.webhook != Webhook.parse(webhook_url):
        raise ValueError(f"the client is for {client.webhook.shown}, not for {Webhook.parse(webhook_url).shown}")
    try:
        key = state_key(webhook_url)
        cursor = Cursor.from_state(store.get_state(key))
        try:
            data = fetch(client, cursor, full=full)
        except Bitrix24Error as exc:
            raise type(exc)(f"{exc} Nothing was written to the workspace.") from exc
        batch, after = build_batch(store, data, cursor, create_missing=create_missing, now=now)
        batch.file = f"Bitrix24 {client.webhook.host}"
        if dry_run:  # apply_batch rolls a dry run back only in its own transaction
            return batch, apply_batch(
                store, batch, create_missing=create_missing, skip_bad_rows=skip_bad_rows, dry_run=True, now=now
            )
        with store.transaction():
            summary = apply_batch(store, batch, create_missing=create_missing, skip_bad_rows=skip_bad_rows, now=now)
            if summary.problems:  # skipped rows: read the same changes again next time, once they are fixed
                after.modified, after.history_id = cursor.modified, cursor.history_id
            if after.to_state() != cursor.to_state():
                store.set_state(key, after.to_state())
        return batch, summary
    finally:
        if own:
            client.close()


def build_batch(
    store: WorkspaceStore,
    data: PortalData,
    cursor: Cursor,
    *,
    create_missing: bool = False,
    now: datetime | None = None,
) -> tuple[ImportBatch, Cursor]:
    """The batch for what was read, and the cursor to save when it lands."""
    names = _Names(data, cursor)
    specs = names.specs(data.statuses)
    names.keep_won(store, specs)
    batch = ImportBatch(
        source=SOURCE, file="Bitrix24", history=True, header=list(DEAL_SELECT), columns=dict(_COLUMNS), pipelines=specs
    )
    records = {d.external_id: d for d in (_deal(batch, names, data, raw) for raw in data.deals) if d is not None}
    rejected = {str(raw.get("ID")) for raw in data.deals} - set(records)
    known = {str(raw.get("ID")) for raw in data.deals}
    moves = [m for m in (_move(batch, names, raw, known, rejected) for raw in data.history) if m is not None]
    if create_missing:
        names.add_unknown(specs)
    else:
        rejected |= _unknown_stages(batch, names, [*records.values(), *moves])
    # A deal with any bad value or history record is left out whole, so it never lands with half its history.
    for ext, deal in records.items():
        if ext not in rejected:
            batch.deals.append(deal)
    batch.moves = [m for m in moves if m.deal not in rejected]
    batch.read = len(data.deals)
    return batch, names.cursor(data, cursor, now or datetime.now(UTC))


# -- names: pipelines and stages ----------------------------------------------------------------------------


@dataclass
class _Names:
    """Pipeline and stage names for category ids and STATUS_IDs: the saved ones first, then fresh, unique ones."""

    data: PortalData
    saved: Cursor
    pipelines: dict[str, str] = field(default_factory=dict)
    stages: dict[str, tuple[str, str]] = field(default_factory=dict)  # STATUS_ID -> (pipeline, stage)
    unknown: dict[tuple[str, str], str] = field(default_factory=dict)  # (pipeline, STATUS_ID) -> semantics

    def __post_init__(self) -> None:
        taken: set[str] = {n.casefold() for n in self.saved.pipelines.values()}
        for c in sorted(self.data.categories, key=lambda c: int(c.get("sort") or 0)):
            cid = str(c.get("id"))
            name = self.saved.pipelines.get(cid) or _unique(
                str(c.get("name") or f"Bitrix24 pipeline {cid}"), cid, taken
            )
            self.pipelines[cid] = name
            taken.add(name.casefold())

    def pipeline(self, category: str) -> str:
        return self.pipelines.get(category) or f"Bitrix24 pipeline {category}"

    def specs(self, statuses: list[Status]) -> list[PipelineSpec]:
        by_category: dict[str, list[Status]] = defaultdict(list)
        for s in sorted(statuses, key=lambda s: s.sort):
            by_category[s.category].append(s)
        return [self._spec(category, listed) for category, listed in by_category.items()]

    def _spec(self, category: str, statuses: list[Status]) -> PipelineSpec:
        pipe = self.pipeline(category)
        taken = {name.casefold() for sid, name in self.saved.stages.items() if _category(sid) == category}
        for s in statuses:
            name = self.saved.stages.get(s.status_id) or _unique(s.name, s.status_id, taken)
            taken.add(name.casefold())
            self.stages[s.status_id] = (pipe, name)
        named = [(self.stages[s.status_id][1], s.kind) for s in statuses]
        won = [n for n, k in named if k is StageKind.WON]
        opens = [n for n, k in named if k is StageKind.OPEN] + won[1:]
        lost = [n for n, k in named if k is StageKind.LOST]
        return PipelineSpec(pipe, opens or ["Новая"], won[0] if won else DEFAULT_WON, lost or [DEFAULT_LOST])

    def keep_won(self, store: WorkspaceStore, specs: list[PipelineSpec]) -> None:
        """A pipeline already in the workspace keeps its won stage's name (a pipeline has one won stage)."""
        existing = {p.name.casefold(): p for p in store.pipelines()}
        for spec in specs:
            pipe = existing.get(spec.name.casefold())
            if pipe is None or spec.won.casefold() in {s.name.casefold() for s in pipe.stages}:
                continue
            for sid, (p, name) in list(self.stages.items()):
                if p == spec.name and name == spec.won:
                    self.stages[sid] = (p, pipe.won_stage.name)
            spec.won = pipe.won_stage.name

    def stage(self, status_id: str, category: str, semantics: Any) -> tuple[str, str]:
        found = self.stages.get(status_id)
        if found is not None:
            return found
        pipe = self.pipeline(category or _category(status_id))
        self.unknown[(pipe, status_id)] = str(semantics or "")
        return pipe, status_id

    def add_unknown(self, specs: list[PipelineSpec]) -> None:
        """Stages the deals and history name that the portal no longer lists (deleted): kept under their ids."""
        by_name = {s.name: s for s in specs}
        for (pipe, sid), semantics in self.unknown.items():
            spec = by_name.get(pipe)
            if spec is not None:
                (spec.lost if semantics.upper() == "F" else spec.open).append(sid)

    def cursor(self, data: PortalData, old: Cursor, now: datetime) -> Cursor:
        history_ids = [_to_int(h.get("ID")) for h in data.history]
        modified = data.server_time or max(
            (str(d.get("DATE_MODIFY")) for d in data.deals if d.get("DATE_MODIFY")), default=old.modified
        )
        return Cursor(
            modified=modified,
            history_id=max([old.history_id, *(i for i in history_ids if i is not None)]),
            pipelines={**old.pipelines, **self.pipelines},
            stages={**old.stages, **{sid: name for sid, (_, name) in self.stages.items()}},
            synced_at=now.astimezone(UTC).isoformat(timespec="seconds"),
        )


def _unique(name: str, key: str, taken: set[str]) -> str:
    return name if name.casefold() not in taken else f"{name} ({key})"


def _category(status_id: str) -> str:
    """``C1:NEW`` → ``1``; ``NEW`` → ``0``."""
    head = status_id.split(":", 1)[0]
    return head[1:] if ":" in status_id and head[:1] == "C" and head[1:].isdigit() else "0"


# -- records ------------------------------------------------------------------------------------------------


def _deal(batch: ImportBatch, names: _Names, data: PortalData, raw: dict[str, Any]) -> DealRecord | None:
    ext = str(raw.get("ID"))
    ref = RowRef(DEALS_FILE, _to_int(ext))
    cells = [_text(raw.get(k)) for k in DEAL_SELECT]
    bad = len(batch.problems)
    pipe, stage = names.stage(_text(raw.get("STAGE_ID")), _text(raw.get("CATEGORY_ID")), raw.get("STAGE_SEMANTIC_ID"))
    amount = _parsed(batch, ref, "OPPORTUNITY", raw, _amount, cells)
    created = _parsed(batch, ref, "DATE_CREATE", raw, parse_datetime, cells)
    closed = _parsed(batch, ref, "CLOSEDATE", raw, parse_datetime, cells) if raw.get("CLOSED") == "Y" else None
    if created is None and len(batch.problems) == bad:
        batch.problem(ref, "DATE_CREATE", "", "a deal without a creation time", cells)
    if len(batch.problems) > bad or created is None:
        return None
    return DealRecord(
        ref=ref,
        external_id=ext,
        title=_text(raw.get("TITLE")) or f"Сделка #{ext}",
        pipeline=pipe,
        stage=stage,
        created_at=created,
        amount=amount,
        currency=(_text(raw.get("CURRENCY_ID")) or "RUB").upper(),
        owner=_owner(batch, data, raw),
        closed_at=closed,
        source=_source(data, raw),
    )


def _move(
    batch: ImportBatch, names: _Names, raw: dict[str, Any], known: set[str], rejected: set[str]
) -> MoveRecord | None:
    deal = _text(raw.get("OWNER_ID"))
    if deal not in known:
        batch.notes[NOTE_DELETED] = batch.notes.get(NOTE_DELETED, 0) + 1
        return None
    ref = RowRef(HISTORY_FILE, _to_int(raw.get("ID")))
    text = _text(raw.get("CREATED_TIME"))
    try:
        at = parse_datetime(text)
    except ValueError as exc:
        batch.problem(ref, "CREATED_TIME", text, f"{exc} (a stage-history record of deal {deal})")
        rejected.add(deal)
        return None
    pipe, stage = names.stage(_text(raw.get("STAGE_ID")), _text(raw.get("CATEGORY_ID")), raw.get("STAGE_SEMANTIC_ID"))
    return MoveRecord(ref, deal, stage, at, pipeline=pipe)


def _unknown_stages(batch: ImportBatch, names: _Names, uses: list[DealRecord | MoveRecord]) -> set[str]:
    """Report stages the portal no longer lists (deleted in Bitrix24); returns the deals that use them."""
    bad: set[str] = set()
    for use in uses:
        pipe = use.pipeline or ""
        if (pipe, use.stage) in names.unknown:
            batch.problem(
                use.ref,
                "STAGE_ID",
                use.stage,
                f"unknown stage: pipeline {pipe!r} of the portal no longer lists it (deleted in Bitrix24?); pass "
                f"--create-missing to keep it as a stage named {use.stage!r}",
            )
            bad.add(use.external_id if isinstance(use, DealRecord) else use.deal)
    return bad


def _parsed(
    batch: ImportBatch, ref: RowRef, key: str, raw: dict[str, Any], parse: Callable[[str], Any], cells: list[str] | None
) -> Any:
    text = _text(raw.get(key))
    if not text:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        batch.problem(ref, key, text, str(exc), cells)
        return None


def _amount(text: str) -> Decimal:
    value = parse_decimal(text)
    if value < 0:
        raise ValueError("a negative amount; amounts are zero or more")
    return value


def _owner(batch: ImportBatch, data: PortalData, raw: dict[str, Any]) -> str | None:
    uid = _text(raw.get("ASSIGNED_BY_ID"))
    if not uid or uid == "0":
        return None
    if uid not in data.users:
        batch.notes[NOTE_NO_USER] = batch.notes.get(NOTE_NO_USER, 0) + 1
    return data.users.get(uid) or f"Bitrix24 user {uid}"


def _source(data: PortalData, raw: dict[str, Any]) -> str | None:
    sid = _text(raw.get("SOURCE_ID"))
    return data.sources.get(sid, sid) or None


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _to_int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None
