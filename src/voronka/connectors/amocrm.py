"""amoCRM / Kommo: the deals export file, and the API v4 sync with the full stage history.

- :func:`read_amocrm_export` reads the export (deals in their current stage only; see
  :mod:`voronka.connectors.amocrm_export`).
- :func:`sync_amocrm` reads pipelines with their statuses, users, loss reasons, leads and the
  ``lead_status_changed`` events through the API (:class:`AmoCrmClient`), and lands them with
  :func:`~voronka.io.apply.apply_batch` together with the sync cursor, in one transaction. The next call reads
  only what changed since (leads by ``updated_at``, events by ``created_at``) unless ``full``.

Examples
--------
>>> import os
>>> import voronka
>>> from voronka.connectors.amocrm import sync_amocrm
>>> ws = voronka.open("sqlite:///crm.db")                                            # doctest: +SKIP
>>> sync_amocrm(ws, "https://example.amocrm.ru", os.environ["AMOCRM_TOKEN"]).line()   # doctest: +SKIP
'read 1520, inserted 1520, updated 0, unchanged 0, rejected 0; 6311 stage moves added'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from voronka.connectors.amocrm_client import (
    AmoCrmAuthError,
    AmoCrmClient,
    AmoCrmError,
    AmoCrmNotFoundError,
    normalize_base_url,
)
from voronka.connectors.amocrm_export import CURRENT_STATE_ONLY, parse_budget, read_amocrm_export
from voronka.connectors.amocrm_records import (
    SOURCE,
    Catalogue,
    Json,
    Names,
    Source,
    build_batch,
    reason_names,
    user_names,
)
from voronka.io.apply import ImportSummary, apply_batch, landing
from voronka.io.problems import ImportRefusedError
from voronka.store.schema import deals
from voronka.store.workspace import WorkspaceStore

__all__ = [
    "CURRENT_STATE_ONLY",
    "SOURCE",
    "AmoCrmAuthError",
    "AmoCrmClient",
    "AmoCrmError",
    "SyncSummary",
    "parse_budget",
    "read_amocrm_export",
    "state_key",
    "sync_amocrm",
]

LEAD_PAGE, EVENT_PAGE, BY_ID = 250, 100, 50
REFUSED_HINT = (
    "Nothing was written and the sync state is unchanged. Re-run with --skip-bad-rows to sync the other "
    "leads (the listed ones are left out), or sync into a new workspace to get every lead's full history."
)


@dataclass
class SyncSummary(ImportSummary):
    """An :class:`ImportSummary` plus what the sync read: the account, the events, full or incremental."""

    host: str = ""
    events: int = 0
    full: bool = False
    notes: dict[str, int] = field(default_factory=dict)


def state_key(base_url: str) -> str:
    """The sync state's key in the workspace: ``amocrm:<host>``."""
    return "amocrm:" + normalize_base_url(base_url).split("://", 1)[1]


@dataclass
class _Cursor:
    """Where the last sync stopped: the newest event (its second and the ids seen in it) and lead update."""

    events_at: int | None = None
    event_ids: list[str] = field(default_factory=list)
    leads_at: int | None = None
    names: Names = field(default_factory=Names)

    @classmethod
    def load(cls, data: Any) -> _Cursor:
        data = data if isinstance(data, dict) else {}
        return cls(
            data.get("events_at"),
            list(data.get("event_ids") or []),
            data.get("leads_at"),
            Names.load(data.get("names")),
        )

    def dump(self) -> dict[str, Any]:
        return {
            "events_at": self.events_at,
            "event_ids": sorted(self.event_ids),
            "leads_at": self.leads_at,
            "names": self.names.dump(),
        }

    def is_new(self, event: Json) -> bool:
        at = int(event["created_at"])
        if self.events_at is None or at > self.events_at:
            return True
        return at == self.events_at and str(event["id"]) not in self.event_ids

    def advanced(self, leads: dict[int, Json], events: list[Json]) -> _Cursor:
        """The cursor after reading ``leads`` and the new ``events``."""
        newest = max([int(e["created_at"]) for e in events] + [self.events_at or 0]) or None
        ids = {str(e["id"]) for e in events if int(e["created_at"]) == newest}
        if newest == self.events_at:
            ids |= set(self.event_ids)
        updated = [int(x["updated_at"]) for x in leads.values() if x.get("updated_at") is not None]
        leads_at = max([*updated, self.leads_at or 0]) or None
        return _Cursor(newest, sorted(ids), leads_at, self.names)


def sync_amocrm(
    store: WorkspaceStore,
    base_url: str,
    token: str | None,
    *,
    full: bool = False,
    now: datetime | None = None,
    skip_bad_rows: bool = False,
    dry_run: bool = False,
    currency: str = "RUB",
    **client_options: Any,
) -> SyncSummary:
    """Bring an amoCRM account's pipelines, leads and their stage history into ``store``.

    Parameters
    ----------
    store
        The workspace.
    base_url, token
        The account (``https://SUBDOMAIN.amocrm.ru`` or ``.kommo.com``) and a long-lived token.
    full
        Read everything again instead of what changed since the last sync (changes nothing already synced).
    now
        The time of moves inferred without an event (a lead whose status changed without one).
    skip_bad_rows, dry_run
        As for file imports: leave out the leads with problems, or check and count without writing.
    currency
        The currency of the budgets.
    client_options
        Passed to :class:`AmoCrmClient` (``transport``, ``sleep``, ``max_retries``, ``rate`` …).

    Returns
    -------
    SyncSummary
        Counts as for a file import, plus the account and the number of events read.

    Raises
    ------
    AmoCrmAuthError
        The token is missing, wrong or lacks rights.
    AmoCrmError
        amoCRM did not answer after the retries; nothing was written.
    """
    key = state_key(base_url)
    saved = store.get_state(key)
    cursor = _Cursor.load(saved)
    full = full or not _any_lead(store)  # a workspace cleared since the last sync is read whole again
    since = _Cursor(names=cursor.names) if full else cursor
    won_stages = {p.name.casefold(): p.won_stage.name for p in store.pipelines()}
    with AmoCrmClient(base_url, token, **client_options) as client:
        src = _fetch(client, since, won_stages)
    marker = ImportSummary(dry_run=dry_run)
    with landing(store, marker):
        batch = build_batch(src, host=client.host, known=_known(store, src.leads), currency=currency)
        try:
            summary = apply_batch(store, batch, skip_bad_rows=skip_bad_rows, now=now)
        except ImportRefusedError as refused:
            raise ImportRefusedError(refused.problems, REFUSED_HINT) from None
        # Leads left out (--skip-bad-rows) keep the old position, so the next run reads them again.
        after = cursor if summary.problems else since.advanced(src.leads, src.events)
        if after.dump() != saved:
            store.set_state(key, after.dump())
    fields = {f.name: getattr(summary, f.name) for f in dataclasses.fields(ImportSummary)}
    return SyncSummary(
        **{**fields, "dry_run": dry_run},
        host=client.host,
        events=len(src.events),
        full=full,
        notes=dict(batch.notes),
    )


def _fetch(client: AmoCrmClient, since: _Cursor, won_stages: dict[str, str]) -> Source:
    """Read the account: the whole catalogue, and the leads and events changed since the cursor."""
    pipelines = client.all("/api/v4/leads/pipelines", "pipelines")
    users = user_names(client.all("/api/v4/users", "users", {"limit": 250}))
    try:
        reasons = reason_names(client.all("/api/v4/leads/loss_reasons", "loss_reasons", {"limit": 250}))
    except AmoCrmNotFoundError:  # an account without the method: the leads still name their reasons
        reasons = {}
    lead_params: dict[str, Any] = {"limit": LEAD_PAGE, "with": "loss_reason"}
    if since.leads_at is not None:
        lead_params["filter[updated_at][from]"] = since.leads_at
    leads = {int(x["id"]): x for x in client.all("/api/v4/leads", "leads", lead_params) if not x.get("is_deleted")}
    event_params: dict[str, Any] = {
        "filter[type]": "lead_status_changed",
        "filter[entity]": "lead",
        "limit": EVENT_PAGE,
    }
    if since.events_at is not None:
        event_params["filter[created_at][from]"] = since.events_at
    events = [e for e in client.all("/api/v4/events", "events", event_params) if since.is_new(e)]
    missing = sorted({int(e["entity_id"]) for e in events} - set(leads))
    for start in range(0, len(missing), BY_ID):
        params = {"filter[id][]": missing[start : start + BY_ID], "limit": LEAD_PAGE, "with": "loss_reason"}
        leads.update({int(x["id"]): x for x in client.all("/api/v4/leads", "leads", params) if not x.get("is_deleted")})
    catalogue = Catalogue(pipelines, list(reasons.values()), since.names, won_stages)
    return Source(catalogue, users, reasons, leads, events)


def _any_lead(store: WorkspaceStore) -> bool:
    """Whether the workspace has any deal from amoCRM."""
    with store.engine.connect() as conn:
        return conn.scalar(select(deals.c.id).where(deals.c.external_source == SOURCE).limit(1)) is not None


def _known(store: WorkspaceStore, leads: dict[int, Json]) -> set[str]:
    """The leads already in the workspace (their creation is logged; only new moves are added)."""
    found: set[str] = set()
    ids = [str(i) for i in leads]
    with store.transaction() as conn:
        for start in range(0, len(ids), 5000):
            stmt = select(deals.c.external_id).where(
                deals.c.external_source == SOURCE, deals.c.external_id.in_(ids[start : start + 5000])
            )
            found.update(conn.scalars(stmt))
    return found
