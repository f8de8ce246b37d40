"""`voronka serve --workers 2` on SQLite: two processes write one file; every acknowledged move lands once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.scenarios import T
from voronka.service import accounts
from voronka.service.workspace import Workspace

pytestmark = pytest.mark.slow


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_workers_move_deals_concurrently_and_lose_nothing(sqlite_url: str) -> None:
    ws = Workspace.connect(sqlite_url)
    accounts.add_account(ws, "head", "correct horse", name="Helen", role="head")
    token = accounts.create_token(ws, "head")
    ws.create_pipeline("Sales", stages=["Request", "Call", "Estimate", "Contract"], reasons=["Price"])
    deals = [ws.add_deal("Sales", f"Door {i}", owner="Anna", at=T("2026-01-10")).id for i in range(8)]
    ws.close()
    port = _port()
    voronka = str(Path(sys.executable).parent / "voronka")
    server = subprocess.Popen(
        [voronka, "--db", sqlite_url, "serve", "--port", str(port), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/v1/pipelines", headers=headers, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)

        stages = ["Call", "Estimate", "Contract", "Request"]

        def walk(deal_id: int) -> list[int]:
            """Move one deal round its stages 12 times, on a connection of its own."""
            acked = []
            with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
                for i in range(12):
                    body = {"stage": stages[i % 4], "expected_version": i + 1}
                    r = c.post(f"/api/v1/deals/{deal_id}/move", json=body)
                    assert r.status_code == 200, r.text
                    acked.append(r.json()["id"])
            return acked

        with ThreadPoolExecutor(8) as pool:
            acks = dict(zip(deals, pool.map(walk, deals), strict=True))
    finally:
        server.terminate()
        server.communicate(timeout=30)
    ws = Workspace.connect(sqlite_url)
    try:
        for deal_id, moves in acks.items():
            history = ws.history(deal_id)
            assert [m.id for m in history[1:]] == moves  # each acknowledged move once, in order, nothing else
            deal = ws.deal(deal_id)
            assert deal.version == 13 and deal.stage_id == history[-1].stage_id
            assert {m.author for m in history[1:]} == {"Helen"}
    finally:
        ws.close()
