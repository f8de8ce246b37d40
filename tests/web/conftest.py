"""The web app through FastAPI's test client, on a fresh workspace (SQLite and PostgreSQL) with four accounts.

The scene: pipeline "Sales" (Request → Call → Contract → Won | Lost, reasons "Too expensive" and "No need"), an
admin, a head, and two managers, Anna and Boris, each owning deals. Passwords are all ``PASSWORD``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from tests.scenarios import T
from voronka.service import accounts
from voronka.service.workspace import Workspace
from voronka.web.app import create_app

# Cheap argon2id parameters: the same algorithm and code path, a fraction of the cost (production keeps the
# library's defaults).
accounts.use_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
PASSWORD = "correct-horse-9"
LOGINS = {
    "admin": ("Admin", "admin"),
    "head": ("Helen Head", "head"),
    "anna": ("Anna", "manager"),
    "boris": ("Boris", "manager"),
}


@dataclass
class Site:
    ws: Workspace
    app: object
    anna_deal: int
    boris_deal: int
    boris_activity: int
    client: Callable[..., TestClient]


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def sign_in(client: TestClient, login: str, password: str = PASSWORD) -> TestClient:
    page = client.get("/login")
    r = client.post(
        "/login", data={"login": login, "password": password, "csrf": csrf_of(page.text)}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    client.headers["x-test-csrf"] = csrf_of(client.get("/").text)
    return client


def build_site(ws: Workspace) -> Site:
    for login, (name, role) in LOGINS.items():
        accounts.add_account(ws, login, PASSWORD, name=name, role=role)
    ws.create_pipeline(
        "Sales", stages=["Request", "Call", "Contract"], reasons=["Too expensive", "No need"], sla_days=[1, 2, 3]
    )
    a = ws.add_deal(
        "Sales", "Kitchen for Ivanov", owner="Anna", amount="150000", source="web", segment="b2c", at=T("2026-01-10")
    )
    b = ws.add_deal(
        "Sales", "Office for Vector", owner="Boris", amount="90000", source="expo", segment="b2b", at=T("2026-01-11")
    )
    ws.add_deal(
        "Sales", "Wardrobe for Petrov", owner="Anna", amount="40000", source="web", segment="b2c", at=T("2026-01-12")
    )
    act = ws.add_activity(b.id, "call", by="Boris", note="call back")
    app = create_app(ws)
    clients: list[TestClient] = []

    def client(login: str | None = None, **kwargs: object) -> TestClient:
        c = TestClient(app, **kwargs)  # type: ignore[arg-type]
        clients.append(c)
        return sign_in(c, login) if login else c

    return Site(ws, app, a.id, b.id, act.id, client)


@pytest.fixture
def site(ws: Workspace) -> Iterator[Site]:
    yield build_site(ws)
