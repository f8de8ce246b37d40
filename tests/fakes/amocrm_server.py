"""A fake amoCRM / Kommo API v4: a real HTTP server on 127.0.0.1 answering from an in-memory account.

It speaks the documented JSON (HAL: ``_embedded``, ``_links.next``, ``_page``) of

- ``GET /api/v4/leads/pipelines`` — pipelines with ``_embedded.statuses`` (142 and 143 in every pipeline);
- ``GET /api/v4/users``, ``GET /api/v4/leads/loss_reasons`` — paginated lists;
- ``GET /api/v4/leads`` — ``page``/``limit``, ``with=loss_reason``, ``filter[updated_at][from]``,
  ``filter[id][]``; ``204 No Content`` past the last page;
- ``GET /api/v4/events`` — ``filter[type]``, ``filter[entity]``, ``filter[created_at][from]``, newest first.

Switches (:class:`Faults`): answer ``429`` (with or without ``Retry-After``) or ``500`` to the first N
requests, and break the connection midway through a list page (headers and half the body, then a closed
socket). The ``Authorization: Bearer`` token must match the account's. Every request is logged in
``requests``.
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Json = dict[str, Any]
WON, LOST = 142, 143


# -- the documented JSON of each entity ------------------------------------------------------------------


def status(pid: int, sid: int, name: str, sort: int, kind: int = 0) -> Json:
    return {
        "id": sid,
        "name": name,
        "sort": sort,
        "is_editable": sid not in (WON, LOST),
        "pipeline_id": pid,
        "color": "#99ccff",
        "type": kind,
        "account_id": 1,
    }


def pipeline(
    pid: int,
    name: str,
    sort: int,
    stages: list[tuple[int, str]],
    won: str = "Успешно реализовано",
    lost: str = "Закрыто и не реализовано",
    *,
    unsorted: int | None = None,
    reverse: bool = False,
) -> Json:
    """A pipeline: «Неразобранное» (type 1) when ``unsorted`` is its id, ``stages``, then 142 and 143.

    ``reverse`` lists the statuses backwards: their order is their ``sort``, not their place in the list.
    """
    statuses = [status(pid, unsorted, "Неразобранное", 10, 1)] if unsorted else []
    statuses += [status(pid, sid, title, 20 + 10 * i) for i, (sid, title) in enumerate(stages)]
    statuses += [status(pid, WON, won, 10000), status(pid, LOST, lost, 11000)]
    return {
        "id": pid,
        "name": name,
        "sort": sort,
        "is_main": sort == 1,
        "is_unsorted_on": bool(unsorted),
        "is_archive": False,
        "account_id": 1,
        "_embedded": {"statuses": statuses[::-1] if reverse else statuses},
    }


def user(uid: int, name: str) -> Json:
    return {"id": uid, "name": name, "email": f"user{uid}@example.com", "lang": "ru", "rights": {}}


def loss_reason(rid: int, name: str, sort: int) -> Json:
    return {"id": rid, "name": name, "sort": sort, "created_at": 1_700_000_000, "updated_at": 1_700_000_000}


def lead(
    lid: int,
    name: str,
    price: int | None,
    pid: int,
    sid: int,
    created: int,
    *,
    by: int = 0,
    owner: int = 0,
    closed: int | None = None,
    reason: int | None = None,
    tags: tuple[str, ...] = (),
) -> Json:
    return {
        "id": lid,
        "name": name,
        "price": price,
        "responsible_user_id": owner,
        "group_id": 0,
        "status_id": sid,
        "pipeline_id": pid,
        "loss_reason_id": reason,
        "created_by": by,
        "updated_by": by,
        "created_at": created,
        "updated_at": closed or created,
        "closed_at": closed,
        "closest_task_at": None,
        "is_deleted": False,
        "custom_fields_values": None,
        "score": None,
        "account_id": 1,
        "_embedded": {
            "tags": [{"id": i + 1, "name": t, "color": None} for i, t in enumerate(tags)],
            "companies": [],
        },
    }


def status_event(eid: str, lid: int, at: int, before: tuple[int, int], after: tuple[int, int], by: int) -> Json:
    def value(pid_sid: tuple[int, int]) -> list[Json]:
        return [{"lead_status": {"id": pid_sid[1], "pipeline_id": pid_sid[0]}}]

    return {
        "id": eid,
        "type": "lead_status_changed",
        "entity_id": lid,
        "entity_type": "lead",
        "created_by": by,
        "created_at": at,
        "value_after": value(after),
        "value_before": value(before),
        "account_id": 1,
        "_embedded": {"entity": {"id": lid}},
    }


@dataclass
class Account:
    """The data the fake serves; tests change it between syncs (:meth:`move`, :meth:`add_lead`)."""

    pipelines: list[Json] = field(default_factory=list)
    users: list[Json] = field(default_factory=list)
    loss_reasons: list[Json] = field(default_factory=list)
    leads: list[Json] = field(default_factory=list)
    events: list[Json] = field(default_factory=list)
    token: str = "good-token"
    page_size: int | None = None  # a cap on ``limit``, to get several pages from a little data

    def lead(self, lid: int) -> Json:
        return next(x for x in self.leads if x["id"] == lid)

    def move(self, lid: int, to: tuple[int, int], at: int, by: int = 0, *, reason: int | None = None) -> Json:
        """Move a lead as amoCRM does: its pipeline/status/updated_at change and an event is logged."""
        x = self.lead(lid)
        before = (x["pipeline_id"], x["status_id"])
        x.update(pipeline_id=to[0], status_id=to[1], updated_at=at, updated_by=by)
        if to[1] in (WON, LOST):
            x["closed_at"] = at
        if reason is not None:
            x["loss_reason_id"] = reason
        ev = status_event(f"ev{len(self.events) + 1:06d}", lid, at, before, to, by)
        self.events.append(ev)
        return ev


@dataclass
class Faults:
    """What goes wrong, and how many times."""

    rate_limited: int = 0
    retry_after: str | None = None
    server_errors: int = 0
    drops: int = 0
    drop_path: str = "/api/v4/leads"
    drop_page: int = 2
    missing: tuple[str, ...] = ()  # paths answered 404, as by an account without the method


@dataclass(frozen=True)
class Request:
    path: str
    params: dict[str, list[str]]
    auth: str | None

    def param(self, name: str) -> str | None:
        values = self.params.get(name)
        return values[0] if values else None


class FakeAmoCrm:
    """The server; use as a context manager: ``with FakeAmoCrm(account) as amo: amo.url``."""

    def __init__(self, account: Account, faults: Faults | None = None) -> None:
        self.account, self.faults = account, faults or Faults()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeAmoCrm:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def paths(self, prefix: str = "/api/v4/") -> list[str]:
        return [r.path for r in self.requests if r.path.startswith(prefix)]

    def calls(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    # -- answering -----------------------------------------------------------------------------------------

    def fault(self, req: Request) -> tuple[int, dict[str, str]] | None:
        """A 429 or 500 to answer instead, while the switches last."""
        with self._lock:
            if self.faults.rate_limited > 0:
                self.faults.rate_limited -= 1
                headers = {"Retry-After": self.faults.retry_after} if self.faults.retry_after else {}
                return 429, headers
            if self.faults.server_errors > 0:
                self.faults.server_errors -= 1
                return 500, {}
        return None

    def drop(self, req: Request) -> bool:
        page = int(req.param("page") or 1)
        with self._lock:
            if self.faults.drops > 0 and req.path == self.faults.drop_path and page == self.faults.drop_page:
                self.faults.drops -= 1
                return True
        return False

    def answer(self, req: Request) -> tuple[int, Json | None]:
        acc = self.account
        if req.path == "/api/v4/leads/pipelines":
            return 200, {
                "_total_items": len(acc.pipelines),
                "_links": {"self": {"href": self.url + req.path}},
                "_embedded": {"pipelines": acc.pipelines},
            }
        lists: dict[str, tuple[str, Callable[[], list[Json]], int]] = {
            "/api/v4/users": ("users", lambda: acc.users, 250),
            "/api/v4/leads/loss_reasons": ("loss_reasons", lambda: acc.loss_reasons, 250),
            "/api/v4/leads": ("leads", lambda: self._leads(req), 250),
            "/api/v4/events": ("events", lambda: self._events(req), 100),
        }
        if req.path not in lists or req.path in self.faults.missing:
            return 404, {"title": "Not Found", "status": 404}
        key, items, most = lists[req.path]
        return self._page(req, key, items(), most)

    def _page(self, req: Request, key: str, items: list[Json], most: int) -> tuple[int, Json | None]:
        limit = min(int(req.param("limit") or 50), most, self.account.page_size or most)
        page = int(req.param("page") or 1)
        chunk = items[(page - 1) * limit : page * limit]
        if not chunk:
            return 204, None
        links = {"self": {"href": self._href(req, page)}}
        if page * limit < len(items):
            links["next"] = {"href": self._href(req, page + 1)}
        return 200, {"_page": page, "_links": links, "_embedded": {key: chunk}}

    def _href(self, req: Request, page: int) -> str:
        params = {**req.params, "page": [str(page)]}
        return f"{self.url}{req.path}?{urllib.parse.urlencode(params, doseq=True)}"

    def _leads(self, req: Request) -> list[Json]:
        since = req.param("filter[updated_at][from]")
        ids = set(req.params.get("filter[id][]", []) + req.params.get("filter[id]", []))
        out = []
        for x in sorted(self.account.leads, key=lambda x: x["id"]):
            if since is not None and x["updated_at"] < int(since) or ids and str(x["id"]) not in ids:
                continue
            shown = json.loads(json.dumps(x))
            if "loss_reason" in (req.param("with") or "").split(",") and x.get("loss_reason_id"):
                reason = next(r for r in self.account.loss_reasons if r["id"] == x["loss_reason_id"])
                shown["_embedded"]["loss_reason"] = [reason]
            out.append(shown)
        return out

    def _events(self, req: Request) -> list[Json]:
        types = set(req.params.get("filter[type]", []) + req.params.get("filter[type][]", []))
        entities = set(req.params.get("filter[entity]", []) + req.params.get("filter[entity][]", []))
        since = req.param("filter[created_at][from]")
        out = [
            e
            for e in self.account.events
            if (not types or e["type"] in types)
            and (not entities or e["entity_type"] in entities)
            and (since is None or e["created_at"] >= int(since))
        ]
        return sorted(out, key=lambda e: (e["created_at"], e["id"]), reverse=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK stalls

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        fake: FakeAmoCrm = self.server.fake  # type: ignore[attr-defined]
        parts = urllib.parse.urlsplit(self.path)
        req = Request(
            parts.path,
            urllib.parse.parse_qs(parts.query, keep_blank_values=True),
            self.headers.get("Authorization"),
        )
        fake.requests.append(req)
        faulty = fake.fault(req)
        if faulty is not None:
            code, headers = faulty
            return self._send(
                code,
                {"title": "Too Many Requests" if code == 429 else "Server Error", "status": code},
                headers,
                problem=True,
            )
        if req.auth != f"Bearer {fake.account.token}":
            return self._send(
                401,
                {
                    "title": "Unauthorized",
                    "type": "https://httpstatus.es/401",
                    "status": 401,
                    "detail": "Неверный логин или пароль",
                },
                problem=True,
            )
        code, body = fake.answer(req)
        if fake.drop(req) and body is not None:
            return self._broken(body)
        self._send(code, body, problem=code >= 400)

    def _send(
        self, code: int, body: Json | None, headers: dict[str, str] | None = None, *, problem: bool = False
    ) -> None:
        data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if code != 204:
            kind = "application/problem+json" if problem else "application/hal+json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _broken(self, body: Json) -> None:
        """Half a page, then the connection closes: the client sees a body cut short."""
        data = json.dumps(body).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/hal+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)
