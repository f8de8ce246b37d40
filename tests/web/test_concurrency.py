"""Concurrent requests: each gets its own Workspace object (a Workspace keeps its transaction on itself), so
moves from many threads at once all land, once each."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from tests.scenarios import T
from tests.web.conftest import Site
from voronka.service import accounts


def test_concurrent_moves_are_neither_lost_nor_doubled(site: Site) -> None:
    ws = site.ws
    stages = [s.name for s in ws.pipeline("Sales").open_stages]
    deals = [ws.add_deal("Sales", f"Parallel {i}", owner="Anna", at=T("2026-01-20")).id for i in range(8)]
    token = accounts.create_token(ws, "head")
    rounds = 6

    def worker(deal: int) -> list[int]:
        client = TestClient(site.app)  # its own event loop and thread pool: truly concurrent with the others
        codes = []
        for r in range(rounds):
            body = {"stage": stages[(r + 1) % len(stages)], "expected_version": r + 1}
            codes.append(
                client.post(
                    f"/api/v1/deals/{deal}/move", json=body, headers={"Authorization": f"Bearer {token}"}
                ).status_code
            )
        return codes

    # A reader hammering the board at the same time must not disturb the writers' transactions.
    def reader() -> list[int]:
        client = TestClient(site.app)
        return [
            client.get("/api/v1/pipelines/1/board", headers={"Authorization": f"Bearer {token}"}).status_code
            for _ in range(10)
        ]

    with ThreadPoolExecutor(len(deals) + 1) as pool:
        read = pool.submit(reader)
        results = list(pool.map(worker, deals))
    assert all(code == 200 for codes in results for code in codes), results
    assert set(read.result()) == {200}
    for deal in deals:
        d = ws.deal(deal)
        history = ws.history(deal)
        assert d.version == rounds + 1 and len(history) == rounds + 1
        assert d.stage_id == history[-1].stage_id == ws.pipeline("Sales").stage(stages[rounds % len(stages)]).id
