"""Bitrix24: the deals export (CSV / HTML ``.xls``) as a snapshot, and the REST sync through an inbound webhook.

- :func:`read_bitrix24_export` — :mod:`voronka.connectors.bitrix24_export`
- :class:`Bitrix24Client` — :mod:`voronka.connectors.bitrix24_client`
- :func:`sync_bitrix24` — :mod:`voronka.connectors.bitrix24_sync` (reading: :mod:`voronka.connectors.bitrix24_fetch`)

See ``docs/connectors.md`` for how to point them at a real portal.
"""

from __future__ import annotations

from voronka.connectors.bitrix24_client import (
    Bitrix24AuthError,
    Bitrix24Client,
    Bitrix24ConnectionError,
    Bitrix24Error,
    Webhook,
)
from voronka.connectors.bitrix24_export import DEFAULT_PIPELINE, SOURCE, export_pipeline_specs, read_bitrix24_export
from voronka.connectors.bitrix24_fetch import Cursor
from voronka.connectors.bitrix24_sync import run_bitrix24_sync, state_key, sync_bitrix24

__all__ = [
    "DEFAULT_PIPELINE",
    "SOURCE",
    "Bitrix24AuthError",
    "Bitrix24Client",
    "Bitrix24ConnectionError",
    "Bitrix24Error",
    "Cursor",
    "Webhook",
    "export_pipeline_specs",
    "read_bitrix24_export",
    "run_bitrix24_sync",
    "state_key",
    "sync_bitrix24",
]
