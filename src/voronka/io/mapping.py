"""Which column holds which field: found by header aliases in Russian and English, or given in a mapping file.

A mapping file (YAML or JSON) names a column by its header, or by ``"#N"`` (1-based position) when headers
repeat, and may fix values the file does not have::

    columns:
      title: Название сделки
      stage: Этап сделки
      amount: "#4"
    pipeline: Новые клиенты      # when the file has no pipeline column
    currency: RUB
    values:                      # rename values of a field
      stage: {yes: Won, no: Lost}

Fields the file does not name are still found by their headers. ``voronka import preview FILE`` prints the
mapping it would use in this format, ready to save and edit.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voronka.errors import InputError

# The first alias that matches a header wins; matching ignores case, spaces and punctuation.
DEAL_FIELDS: dict[str, tuple[str, ...]] = {
    "external_id": (
        "id",
        "id сделки",
        "ид",
        "идентификатор",
        "external id",
        "deal id",
        "opportunity_id",
        "lead id",
    ),
    "title": ("название сделки", "название", "сделка", "deal name", "deal", "title", "name", "opportunity"),
    "pipeline": ("воронка", "направление", "воронка продаж", "pipeline", "funnel", "category"),
    "stage": (
        "этап сделки",
        "стадия сделки",
        "этап",
        "стадия",
        "статус",
        "stage",
        "deal stage",
        "deal_stage",
        "status",
    ),
    "amount": (
        "бюджет",
        "сумма",
        "сумма сделки",
        "amount",
        "budget",
        "value",
        "close_value",
        "deal value",
        "opportunity amount",
        "revenue",
    ),
    "currency": ("валюта", "currency"),
    "owner": (
        "ответственный",
        "менеджер",
        "ответственный менеджер",
        "owner",
        "responsible",
        "manager",
        "sales_agent",
        "sales agent",
        "assigned to",
        "assigned",
    ),
    "created": (
        "дата создания",
        "дата создания сделки",
        "создана",
        "создано",
        "created",
        "created at",
        "date created",
        "created_at",
        "created date",
        "engage_date",
        "open date",
    ),
    "closed": (
        "дата закрытия",
        "дата закрытия сделки",
        "закрыта",
        "closed",
        "closed at",
        "close date",
        "close_date",
        "closed_at",
        "won date",
        "won_date",
    ),
    "loss_reason": (
        "причина отказа",
        "причина отказа (закрытия)",
        "причина закрытия",
        "loss reason",
        "lost reason",
        "reason lost",
        "loss_reason",
    ),
    "source": (
        "источник",
        "источник сделки",
        "канал",
        "utm_source",
        "utm source",
        "source",
        "channel",
        "origin",
        "lead source",
    ),
    "segment": ("сегмент", "тип клиента", "segment", "customer segment", "sector", "business_segment"),
}
MOVE_FIELDS: dict[str, tuple[str, ...]] = {
    "deal": (
        "deal",
        "deal id",
        "case",
        "case id",
        "case:concept:name",
        "сделка",
        "id сделки",
        "opportunity_id",
    ),
    "stage": ("stage", "этап", "стадия", "activity", "concept:name", "status", "статус"),
    "at": ("time", "timestamp", "at", "date", "время", "дата", "time:timestamp", "moved at"),
    "pipeline": DEAL_FIELDS["pipeline"],
    "by": ("by", "author", "user", "кто", "автор", "org:resource", "resource"),
    "reason": ("reason", "loss reason", "причина", "причина отказа"),
    "comment": ("comment", "комментарий", "note"),
}
REQUIRED_DEAL_FIELDS = ("title", "stage")


def norm(header: str) -> str:
    return re.sub(r"[\s_:.\-()]+", " ", header.casefold().replace("ё", "е")).strip()


@dataclass
class Mapping:
    """Field name -> 0-based column index, plus constants for fields the file lacks."""

    columns: dict[str, int]
    constants: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # field -> {value in the file: value to use}

    def to_file_dict(self, header: list[str]) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for h in header:
            counts[h] = counts.get(h, 0) + 1
        cols = {f: (header[i] if counts[header[i]] == 1 else f"#{i + 1}") for f, i in self.columns.items()}
        out: dict[str, Any] = {"columns": cols}
        out.update(self.constants)
        return out


def detect(header: list[str], fields: dict[str, tuple[str, ...]] = DEAL_FIELDS) -> Mapping:
    """Map fields to columns by alias; each column is used once, the first of repeated headers first."""
    normed = [norm(h) for h in header]
    used: set[int] = set()
    columns: dict[str, int] = {}
    for name, aliases in fields.items():
        for alias in aliases:
            hit = next((i for i, h in enumerate(normed) if h == norm(alias) and i not in used), None)
            if hit is not None:
                columns[name] = hit
                used.add(hit)
                break
    return Mapping(columns)


def resolve_column(ref: str | int, header: list[str], what: str) -> int:
    """A column given as a header name, ``#N`` (1-based), or an int (0-based)."""
    if isinstance(ref, int):
        index = ref
    elif isinstance(ref, str) and re.fullmatch(r"#\d+", ref.strip()):
        index = int(ref.strip()[1:]) - 1
    else:
        key = norm(str(ref))
        matches = [i for i, h in enumerate(header) if norm(h) == key]
        if not matches:
            shown = ", ".join(repr(h) for h in header[:30])
            raise InputError(f"Column {ref!r} for {what} is not in the file's header. Columns are: {shown}.")
        index = matches[0]
    if not 0 <= index < len(header):
        raise InputError(f"Column {ref!r} for {what} is outside the header's {len(header)} columns.")
    return index


def load_mapping(path: str | Path, header: list[str], fields: dict[str, tuple[str, ...]] = DEAL_FIELDS) -> Mapping:
    """Read a YAML or JSON mapping file and resolve its columns against ``header``."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"Mapping file {str(p)!r} does not exist; `voronka import preview FILE` prints one.")
    text = p.read_text(encoding="utf-8-sig")
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:
        raise InputError(f"Mapping file {p.name} is not valid YAML/JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("columns", {}), dict):
        raise InputError(f"Mapping file {p.name} must be a mapping with a 'columns:' section of field: column.")
    unknown = set(data.get("columns", {})) - set(fields)
    if unknown:
        raise InputError(
            f"Mapping file {p.name} names unknown fields {sorted(unknown)}; known fields: {', '.join(fields)}."
        )
    columns = {f: resolve_column(ref, header, f) for f, ref in data.get("columns", {}).items()}
    values = data.get("values") or {}
    if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
        raise InputError(f"Mapping file {p.name}: 'values:' must map a field to {{value in the file: value to use}}.")
    constants = {k: str(v) for k, v in data.items() if k not in ("columns", "values")}
    return Mapping(columns, constants, {f: {str(a): str(b) for a, b in m.items()} for f, m in values.items()})
