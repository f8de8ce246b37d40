"""What a Bitrix24 sync reads: deal pipelines ("directions") and their stages, users, sources, deals, and the
stage history — all of it, or what changed since the saved cursor.

Requests: one ``batch`` for the categories, the default pipeline's stages, the sources and the first users; one
for the other pipelines' stages; then the deals, then the history (after the deals, so that every stage a deal
shows is in the history read), then the deals the history names that were not read yet. Lists come 50 records a
page, the pages after the first 50 per ``batch``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from voronka.connectors.bitrix24_client import Bitrix24Client
from voronka.domain.pipeline import StageKind

DEAL = 2  # entityTypeId of deals
DEAL_SELECT = (
    "ID",
    "TITLE",
    "CATEGORY_ID",
    "STAGE_ID",
    "STAGE_SEMANTIC_ID",
    "OPPORTUNITY",
    "CURRENCY_ID",
    "ASSIGNED_BY_ID",
    "SOURCE_ID",
    "DATE_CREATE",
    "DATE_MODIFY",
    "CLOSED",
    "CLOSEDATE",
)
HISTORY_SELECT = ("ID", "TYPE_ID", "OWNER_ID", "CREATED_TIME", "CATEGORY_ID", "STAGE_ID", "STAGE_SEMANTIC_ID")
DEFAULT_CATEGORY = {"id": 0, "name": "Общая", "sort": 0, "isDefault": "Y"}
_KINDS = {
    "process": StageKind.OPEN,
    "p": StageKind.OPEN,
    "success": StageKind.WON,
    "s": StageKind.WON,
    "failure": StageKind.LOST,
    "apology": StageKind.LOST,
    "f": StageKind.LOST,
}


@dataclass
class Cursor:
    """What the last sync of a portal saw, kept with ``store.set_state("bitrix24:<portal>", ...)``.

    ``modified``: the portal's time when that sync began; deals with ``DATE_MODIFY`` at or after it are read
    again. ``history_id``: the last stage-history record read; only later ones are read. ``pipelines`` and
    ``stages``: the names a category id and a ``STATUS_ID`` were imported under, so that renaming one in Bitrix24
    does not split its history in two.
    """

    modified: str | None = None
    history_id: int = 0
    pipelines: dict[str, str] = field(default_factory=dict)
    stages: dict[str, str] = field(default_factory=dict)
    synced_at: str | None = None

    @classmethod
    def from_state(cls, value: Any) -> Cursor:
        if not isinstance(value, dict):
            return cls()
        return cls(
            modified=value.get("modified"),
            history_id=int(value.get("history_id") or 0),
            pipelines=dict(value.get("pipelines") or {}),
            stages=dict(value.get("stages") or {}),
            synced_at=value.get("synced_at"),
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "modified": self.modified,
            "history_id": self.history_id,
            "pipelines": self.pipelines,
            "stages": self.stages,
            "synced_at": self.synced_at,
        }


@dataclass(frozen=True)
class Status:
    """A deal stage: ``STATUS_ID`` (``NEW`` in the default pipeline, ``C1:NEW`` in pipeline 1), name and kind."""

    status_id: str
    category: str
    name: str
    sort: int
    kind: StageKind


@dataclass
class PortalData:
    categories: list[dict[str, Any]]
    statuses: list[Status]
    users: dict[str, str]
    sources: dict[str, str]
    deals: list[dict[str, Any]]
    history: list[dict[str, Any]]
    server_time: str | None = None


def fetch(client: Bitrix24Client, cursor: Cursor, *, full: bool = False) -> PortalData:
    """Read the portal: everything when ``full`` or on the first sync, else what changed since ``cursor``."""
    meta = client.list_many(
        {
            "categories": ("crm.category.list", {"entityTypeId": DEAL}),
            "stages": ("crm.status.list", {"filter": {"ENTITY_ID": "DEAL_STAGE"}, "order": {"SORT": "ASC"}}),
            "sources": ("crm.status.list", {"filter": {"ENTITY_ID": "SOURCE"}, "order": {"SORT": "ASC"}}),
            "users": ("user.get", {}),
        }
    )
    categories = _with_default(meta["categories"])
    others = [str(c.get("id")) for c in categories if str(c.get("id")) != "0"]
    stage_lists = (
        client.list_many(
            {
                f"c{cid}": ("crm.status.list", {"filter": {"ENTITY_ID": f"DEAL_STAGE_{cid}"}, "order": {"SORT": "ASC"}})
                for cid in others
            }
        )
        if others
        else {}
    )
    raw_statuses = meta["stages"] + [s for rows in stage_lists.values() for s in rows]
    deals = client.list_all("crm.deal.list", _deal_params(cursor, full))
    history = client.list_all("crm.stagehistory.list", _history_params(cursor, full))
    deals += _missing_deals(client, deals, history)
    return PortalData(
        categories=categories,
        statuses=[_status(s) for s in raw_statuses],
        users=_user_names(meta["users"]),
        sources={str(s.get("STATUS_ID")): str(s.get("NAME") or s.get("STATUS_ID")) for s in meta["sources"]},
        deals=deals,
        history=history,
        server_time=client.server_time,
    )


def _with_default(categories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if any(str(c.get("id")) == "0" for c in categories):
        return categories
    return [DEFAULT_CATEGORY, *categories]


def _deal_params(cursor: Cursor, full: bool) -> dict[str, Any]:
    params: dict[str, Any] = {"select": list(DEAL_SELECT), "order": {"ID": "ASC"}}
    if cursor.modified and not full:
        params["filter"] = {">=DATE_MODIFY": cursor.modified}
    return params


def _history_params(cursor: Cursor, full: bool) -> dict[str, Any]:
    params: dict[str, Any] = {"entityTypeId": DEAL, "select": list(HISTORY_SELECT), "order": {"ID": "ASC"}}
    if cursor.history_id and not full:
        params["filter"] = {">ID": cursor.history_id}
    return params


def _missing_deals(
    client: Bitrix24Client, deals: list[dict[str, Any]], history: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The deals the history names that the deal list did not return (unchanged since the cursor)."""
    have = {str(d.get("ID")) for d in deals}
    missing = sorted({str(h.get("OWNER_ID")) for h in history} - have, key=_int_key)
    if not missing:
        return []
    lists = {
        f"ids{i}": ("crm.deal.list", {"select": list(DEAL_SELECT), "filter": {"@ID": chunk}, "order": {"ID": "ASC"}})
        for i, chunk in enumerate(_chunks(missing, 50))
    }
    return [d for rows in client.list_many(lists).values() for d in rows]


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _int_key(text: str) -> tuple[int, str]:
    return (int(text), "") if text.isdigit() else (0, text)


def _status(raw: dict[str, Any]) -> Status:
    sid = str(raw.get("STATUS_ID") or "")
    category = str(raw.get("CATEGORY_ID") or "")
    if not category:
        entity = str(raw.get("ENTITY_ID") or "")
        category = entity.rsplit("_", 1)[1] if entity.startswith("DEAL_STAGE_") else "0"
    try:
        sort = int(raw.get("SORT") or 0)
    except (TypeError, ValueError):
        sort = 0
    return Status(sid, category, str(raw.get("NAME") or sid).strip() or sid, sort, status_kind(raw))


def status_kind(raw: dict[str, Any]) -> StageKind:
    """The kind of a stage from ``EXTRA.SEMANTICS`` (process/success/failure), ``SEMANTICS`` (S/F) or its id."""
    extra = raw.get("EXTRA") if isinstance(raw.get("EXTRA"), dict) else {}
    for value in (extra.get("SEMANTICS"), raw.get("SEMANTICS")):
        if value and str(value).casefold() in _KINDS:
            return _KINDS[str(value).casefold()]
    suffix = str(raw.get("STATUS_ID") or "").rsplit(":", 1)[-1]
    if suffix == "WON":
        return StageKind.WON
    return StageKind.LOST if suffix in ("LOSE", "APOLOGY") else StageKind.OPEN


def _user_names(users: list[dict[str, Any]]) -> dict[str, str]:
    """User id → "Name Last-name"; two users with the same name get their ids added, to stay apart."""
    names = {str(u.get("ID")): _full_name(u) for u in users}
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name.casefold()] = counts.get(name.casefold(), 0) + 1
    return {uid: (f"{name} ({uid})" if counts[name.casefold()] > 1 else name) for uid, name in names.items()}


def _full_name(user: dict[str, Any]) -> str:
    parts = [str(user.get(k) or "").strip() for k in ("NAME", "LAST_NAME")]
    return " ".join(p for p in parts if p) or str(user.get("EMAIL") or "").strip() or f"Bitrix24 user {user.get('ID')}"
