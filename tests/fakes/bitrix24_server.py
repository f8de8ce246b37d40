"""A fake Bitrix24 portal: a real HTTP server on 127.0.0.1 answering REST calls from an in-memory scenario.

It speaks the documented JSON of an inbound webhook ``/rest/USER_ID/CODE/METHOD.json`` (JSON or form bodies):

- ``crm.category.list`` (``{"categories": [...]}``), ``crm.status.list`` (filter ``ENTITY_ID`` ``DEAL_STAGE``,
  ``DEAL_STAGE_{id}``, ``SOURCE``; ``order`` ``SORT``), ``user.get``;
- ``crm.deal.list`` — ``select``, ``filter`` with the ``>=``/``>``/``<``/``@``/``!`` prefixes, ``order``, ``start``
  pagination (50 a page, ``next`` and ``total``), every value a string as Bitrix24 sends them;
- ``crm.stagehistory.list`` — ``{"items": [...]}`` with numbers as numbers, as the documentation shows;
- ``batch`` — ``cmd[name]=method?query`` (PHP-style query strings), ``result``/``result_error``/
  ``result_total``/``result_next``, empty maps written as ``[]`` the way PHP writes them.

Switches: answer ``QUERY_LIMIT_EXCEEDED`` (503, or a plain 429) to the next N requests; break the connection
(no answer, or headers and half a body) after N requests; refuse chosen methods with a given error (e.g.
``insufficient_scope``); a wrong webhook code is refused with ``401 NO_AUTH_FOUND``. Every call, including
those inside a batch, is logged in ``calls``.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

Json = dict[str, Any]
MSK = timezone(timedelta(hours=3))
PAGE = 50
SECRET = "k3yw3bh00k9x"
_SEMANTICS = {"process": None, "success": "S", "failure": "F"}
_LETTER = {"process": "P", "success": "S", "failure": "F"}
_DATES = ("DATE_CREATE", "DATE_MODIFY", "CLOSEDATE", "CREATED_TIME")


def iso(dt: datetime) -> str:
    return dt.astimezone(MSK).isoformat(timespec="seconds")


# -- the scenario -------------------------------------------------------------------------------------------


def status(entity: str, sid: str, name: str, sort: int, semantics: str = "process") -> Json:
    category = entity.rsplit("_", 1)[1] if entity.startswith("DEAL_STAGE_") else "0"
    return {
        "ID": "0",
        "ENTITY_ID": entity,
        "STATUS_ID": sid,
        "NAME": name,
        "NAME_INIT": name,
        "SORT": str(sort),
        "SYSTEM": "Y",
        "CATEGORY_ID": category,
        "COLOR": "#39A8EF",
        "SEMANTICS": _SEMANTICS[semantics],
        "EXTRA": {"SEMANTICS": semantics, "COLOR": "#39A8EF"},
    }


def default_statuses() -> dict[str, list[Json]]:
    """Two pipelines; listed out of order on purpose (their order is SORT)."""
    main = [
        status("DEAL_STAGE", "WON", "Сделка успешна", 60, "success"),
        status("DEAL_STAGE", "NEW", "Новая", 10),
        status("DEAL_STAGE", "EXECUTING", "В работе", 40),
        status("DEAL_STAGE", "PREPARATION", "Подготовка документов", 20),
        status("DEAL_STAGE", "APOLOGY", "Анализ причины провала", 80, "failure"),
        status("DEAL_STAGE", "FINAL_INVOICE", "Финальный счёт", 50),
        status("DEAL_STAGE", "LOSE", "Сделка провалена", 70, "failure"),
    ]
    repeat = [
        status("DEAL_STAGE_1", "C1:NEW", "Новая", 10),
        status("DEAL_STAGE_1", "C1:LOSE", "Сделка провалена", 70, "failure"),
        status("DEAL_STAGE_1", "C1:PREPARATION", "Коммерческое предложение", 20),
        status("DEAL_STAGE_1", "C1:WON", "Сделка успешна", 60, "success"),
    ]
    sources = [status("SOURCE", "CALL", "Звонок", 10), status("SOURCE", "WEB", "Веб-сайт", 20)]
    return {"DEAL_STAGE": main, "DEAL_STAGE_1": repeat, "SOURCE": sources}


# The path each deal takes, by deal id modulo 6 (default pipeline) or 3 (pipeline 1).
PATHS_MAIN = [
    ["NEW"],
    ["NEW", "PREPARATION"],
    ["NEW", "PREPARATION", "EXECUTING", "WON"],
    ["NEW", "LOSE"],
    ["NEW", "PREPARATION", "APOLOGY"],
    ["NEW", "EXECUTING", "FINAL_INVOICE"],
]
PATHS_REPEAT = [["C1:NEW"], ["C1:NEW", "C1:PREPARATION", "C1:WON"], ["C1:NEW", "C1:LOSE"]]
MOVED_DEAL = 7  # starts in the default pipeline and moves to pipeline 1
DELETED_DEAL = 999  # has stage history but is no longer a deal


@dataclass
class Scenario:
    """The portal's data. ``deals`` hold strings (as crm.deal.list sends them); ``history`` numbers."""

    user_id: str = "1"
    code: str = SECRET
    categories: list[Json] = field(default_factory=list)
    statuses: dict[str, list[Json]] = field(default_factory=default_statuses)
    users: list[Json] = field(default_factory=list)
    deals: dict[int, Json] = field(default_factory=dict)
    history: list[Json] = field(default_factory=list)
    now: datetime = datetime(2026, 1, 1, tzinfo=MSK)

    def kind(self, sid: str) -> str:
        for rows in self.statuses.values():
            for s in rows:
                if s["STATUS_ID"] == sid:
                    return str(s["EXTRA"]["SEMANTICS"])
        return "process"

    def add_deal(self, deal_id: int, stage: str, at: datetime, *, category: int = 0, **fields: str) -> Json:
        deal = {
            "ID": str(deal_id),
            "TITLE": f"Сделка {deal_id}",
            "CATEGORY_ID": str(category),
            "STAGE_ID": stage,
            "STAGE_SEMANTIC_ID": "P",
            "OPPORTUNITY": f"{10000 + deal_id * 1500}.00",
            "CURRENCY_ID": "RUB",
            "ASSIGNED_BY_ID": str(1 + deal_id % 3),
            "SOURCE_ID": ("CALL", "WEB", "")[deal_id % 3],
            "DATE_CREATE": iso(at),
            "DATE_MODIFY": iso(at),
            "CLOSED": "N",
            "CLOSEDATE": iso(at + timedelta(days=30)),
            "COMMENTS": "",
            **fields,
        }
        self.deals[deal_id] = deal
        self.record(deal_id, stage, at, type_id=1, category=category)
        return deal

    def move(self, deal_id: int, stage: str, at: datetime, *, category: int | None = None) -> None:
        """Move a deal (the history gets a record; the deal its new stage, and ``DATE_MODIFY``)."""
        deal = self.deals.get(deal_id)
        old_category = int(deal["CATEGORY_ID"]) if deal else 0
        category = old_category if category is None else category
        kind = self.kind(stage)
        type_id = 5 if category != old_category else (2 if kind == "process" else 3)
        self.record(deal_id, stage, at, type_id=type_id, category=category)
        if deal is not None:
            deal.update(
                STAGE_ID=stage,
                CATEGORY_ID=str(category),
                STAGE_SEMANTIC_ID=_LETTER[kind],
                DATE_MODIFY=iso(at),
                CLOSED="N" if kind == "process" else "Y",
            )
            if kind != "process":
                deal["CLOSEDATE"] = iso(at)

    def record(self, deal_id: int, stage: str, at: datetime, *, type_id: int, category: int) -> None:
        self.history.append(
            {
                "ID": len(self.history) + 1,
                "TYPE_ID": type_id,
                "OWNER_ID": deal_id,
                "CREATED_TIME": iso(at),
                "CATEGORY_ID": category,
                "STAGE_SEMANTIC_ID": _LETTER[self.kind(stage)],
                "STAGE_ID": stage,
            }
        )
        self.now = max(self.now, at + timedelta(hours=1))


def default_scenario(deals: int = 120, users: int = 55) -> Scenario:
    """``deals`` deals over both pipelines (three pages), their history (several pages), ``users`` users."""
    sc = Scenario(
        categories=[
            {"id": 1, "name": "Повторные продажи", "sort": 200, "entityTypeId": 2, "isDefault": "N"},
            {"id": 0, "name": "Общая", "sort": 100, "entityTypeId": 2, "isDefault": "Y"},
        ]
    )
    sc.users = [
        {"ID": "1", "ACTIVE": True, "NAME": "Иван", "LAST_NAME": "Петров"},
        {"ID": "2", "ACTIVE": True, "NAME": "Анна", "LAST_NAME": "Смирнова"},
        {"ID": "3", "ACTIVE": False, "NAME": "Олег", "LAST_NAME": "Сидоров"},
    ]
    sc.users += [{"ID": str(i), "ACTIVE": True, "NAME": "Сотрудник", "LAST_NAME": str(i)} for i in range(4, users + 1)]
    base = datetime(2026, 1, 12, 9, 0, tzinfo=MSK)
    events: list[tuple[datetime, int, str, int]] = []  # (time, deal, stage, category)
    for i in range(1, deals + 1):
        start = base + timedelta(hours=7 * i)
        repeat = i % 5 == 0
        path = PATHS_REPEAT[i % 3] if repeat else PATHS_MAIN[i % 6]
        if i == MOVED_DEAL:
            path = ["NEW", "PREPARATION", "C1:NEW", "C1:WON"]
        events += [(start + timedelta(days=k, minutes=i), i, s, _category_of(s)) for k, s in enumerate(path)]
    events.append((base + timedelta(hours=30), DELETED_DEAL, "NEW", 0))
    for at, deal_id, stage, category in sorted(events):
        if deal_id not in sc.deals:
            if deal_id == DELETED_DEAL:
                sc.record(deal_id, stage, at, type_id=1, category=0)
            else:
                sc.add_deal(deal_id, stage, at, category=category)
        else:
            sc.move(deal_id, stage, at, category=category)
    return sc


def _category_of(stage: str) -> int:
    return int(stage[1:].split(":", 1)[0]) if stage.startswith("C") and ":" in stage else 0


# -- queries ------------------------------------------------------------------------------------------------


def parse_php(query: str) -> Json:
    """``filter[>ID]=5&select[0]=ID`` → ``{"filter": {">ID": "5"}, "select": ["ID"]}`` (as PHP reads it)."""
    out: Json = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        name = key.split("[", 1)[0]
        subs = re.findall(r"\[([^\]]*)\]", key[len(name) :])
        node = out
        for part in [name, *subs][:-1]:
            node = node.setdefault(part, {})
        last = [name, *subs][-1]
        node[last if last != "" else str(len(node))] = value
    return _lists(out)


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        value = {k: _lists(v) for k, v in value.items()}
        if value and all(k.isdigit() for k in value):
            return [value[k] for k in sorted(value, key=int)]
    return value


_OPS = ("!@", ">=", "<=", "!=", ">", "<", "@", "=", "!")


def _split(key: str) -> tuple[str, str]:
    for op in _OPS:
        if key.startswith(op):
            return op, key[len(op) :]
    return "=", key


def _value(field_name: str, value: Any) -> Any:
    text = str(value)
    if field_name in _DATES:
        return datetime.fromisoformat(text)
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def matches(row: Json, filters: Json) -> bool:
    for key, want in (filters or {}).items():
        op, name = _split(key)
        have = _value(name, row.get(name, ""))
        if op in ("@", "!@"):
            inside = have in [_value(name, w) for w in (want if isinstance(want, list) else [want])]
            if inside != (op == "@"):
                return False
            continue
        w = _value(name, want)
        ok = {
            "=": have == w,
            "!": have != w,
            "!=": have != w,
            ">": have > w,
            ">=": have >= w,
            "<": have < w,
            "<=": have <= w,
        }[op]
        if not ok:
            return False
    return True


def _ordered(rows: list[Json], order: Json | None) -> list[Json]:
    for key, direction in reversed(list((order or {}).items())):
        rows = sorted(rows, key=lambda r, k=key: _value(k, r.get(k, "")), reverse=str(direction).upper() == "DESC")
    return rows


def _page(rows: list[Json], params: Json) -> tuple[list[Json], Json]:
    start = int(params.get("start") or 0)
    page = rows[start : start + PAGE]
    extra: Json = {"total": len(rows)}
    if start + PAGE < len(rows):
        extra["next"] = start + PAGE
    return page, extra


def _select(row: Json, select: list[str] | None) -> Json:
    if not select or "*" in select:
        return dict(row)
    return {k: row[k] for k in select if k in row}


# -- the server ---------------------------------------------------------------------------------------------


@dataclass
class Call:
    method: str
    params: Json
    in_batch: bool = False


class FakeBitrix24:
    """The fake portal; ``with FakeBitrix24() as portal: portal.webhook`` is its inbound webhook URL."""

    def __init__(self, scenario: Scenario | None = None) -> None:
        self.scenario = scenario or default_scenario()
        self.calls: list[Call] = []
        self.requests = 0  # HTTP requests answered (a batch is one)
        self.rate_limited = 0  # answer QUERY_LIMIT_EXCEEDED to this many of the next requests
        self.rate_limit_status = 503  # 503 with the JSON error, or 429 with a plain body
        self.drop_after: int | None = None  # after this many requests, break connections ...
        self.drops = 0  # ... this many times (-1: every time)
        self.drop_mode = "close"  # "close": no answer; "partial": headers and half the body
        self.refuse: dict[str, tuple[int, str, str]] = {}  # method -> (status, error, description)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> FakeBitrix24:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def webhook_with(self, code: str) -> str:
        return f"http://{self.host}/rest/{self.scenario.user_id}/{code}/"

    @property
    def webhook(self) -> str:
        return self.webhook_with(self.scenario.code)

    def methods(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.method == name]

    # -- answering ------------------------------------------------------------------------------------------

    def answer(self, user: str, code: str, method: str, params: Json) -> tuple[int, Any] | None:
        """(status, body) for one HTTP request, or None to break the connection."""
        with self.lock:
            self.requests += 1
            if self.drop_after is not None and self.requests > self.drop_after and self.drops != 0:
                self.drops -= 1 if self.drops > 0 else 0
                return None
            if self.rate_limited > 0:
                self.rate_limited -= 1
                if self.rate_limit_status == 429:
                    return 429, "Too Many Requests"
                return 503, {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
            if (user, code) != (self.scenario.user_id, self.scenario.code):
                return 401, {"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"}
            if method == "batch":
                return self._batch(params)
            self.calls.append(Call(method, params))
            return self._method(method, params)

    def _time(self) -> Json:
        now = self.scenario.now
        return {
            "start": now.timestamp(),
            "finish": now.timestamp(),
            "duration": 0.01,
            "processing": 0.01,
            "date_start": iso(now),
            "date_finish": iso(now),
            "operating": 0,
        }

    def _method(self, method: str, params: Json) -> tuple[int, Json]:
        if method in self.refuse:
            code, error, description = self.refuse[method]
            return code, {"error": error, "error_description": description}
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return 404, {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}
        result, extra = handler(params)
        return 200, {"result": result, **extra, "time": self._time()}

    def _batch(self, params: Json) -> tuple[int, Json]:
        commands = params.get("cmd") or {}
        if len(commands) > 50:
            return 400, {
                "error": "ERROR_BATCH_LENGTH_EXCEEDED",
                "error_description": "Max batch length exceeded",
            }
        out: dict[str, Json] = {"result": {}, "result_error": {}, "result_total": {}, "result_next": {}}
        for name, line in commands.items():
            method, _, query = str(line).partition("?")
            sub = parse_php(query)
            self.calls.append(Call(method, sub, in_batch=True))
            code, body = self._method(method, sub)
            if code != 200:
                out["result_error"][name] = {
                    "error": body["error"],
                    "error_description": body["error_description"],
                }
                continue
            out["result"][name] = body["result"]
            for key in ("total", "next"):
                if key in body:
                    out[f"result_{key}"][name] = body[key]
        php = {k: (v or []) for k, v in out.items()}  # PHP writes an empty map as []
        return 200, {"result": {**php, "result_time": []}, "time": self._time()}

    # -- methods --------------------------------------------------------------------------------------------

    def _crm_category_list(self, params: Json) -> tuple[Any, Json]:
        if str(params.get("entityTypeId")) != "2":
            return {"categories": []}, {"total": 0}
        return {"categories": list(self.scenario.categories)}, {"total": len(self.scenario.categories)}

    def _crm_status_list(self, params: Json) -> tuple[Any, Json]:
        entity = (params.get("filter") or {}).get("ENTITY_ID")
        rows = [r for e, rs in self.scenario.statuses.items() if entity in (None, e) for r in rs]
        rows = _ordered(rows, params.get("order"))
        return rows, {"total": len(rows)}

    def _user_get(self, params: Json) -> tuple[Any, Json]:
        rows = [u for u in self.scenario.users if matches(u, params.get("FILTER") or params.get("filter") or {})]
        return _page(rows, params)

    def _crm_deal_list(self, params: Json) -> tuple[Any, Json]:
        rows = [d for d in self.scenario.deals.values() if matches(d, params.get("filter") or {})]
        rows = _ordered(rows, params.get("order") or {"ID": "ASC"})
        page, extra = _page(rows, params)
        return [_select(r, params.get("select")) for r in page], extra

    def _crm_stagehistory_list(self, params: Json) -> tuple[Any, Json]:
        if str(params.get("entityTypeId")) != "2":
            return {"items": []}, {"total": 0}
        rows = [h for h in self.scenario.history if matches(h, params.get("filter") or {})]
        rows = _ordered(rows, params.get("order") or {"ID": "ASC"})
        page, extra = _page(rows, params)
        return {"items": [_select(r, params.get("select")) for r in page]}, extra


def _handler(fake: FakeBitrix24) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            return

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self._serve()

        def do_POST(self) -> None:  # noqa: N802
            self._serve()

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            params = parse_php(parts.query)
            params.update(self._body())
            m = re.fullmatch(r"/rest/(\d+)/([^/]+)/([\w.]+?)(?:\.json)?/?", parts.path)
            if m is None:
                self._send(404, {"error": "NOT_FOUND", "error_description": "Not a REST path"})
                return
            answer = fake.answer(m[1], m[2], m[3], params)
            if answer is None:
                self._drop()
                return
            self._send(*answer)

        def _body(self) -> Json:
            size = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(size) if size else b""
            if not raw:
                return {}
            if "json" in (self.headers.get("Content-Type") or ""):
                return dict(json.loads(raw))
            return parse_php(raw.decode())

        def _send(self, code: int, body: Any) -> None:
            data = (body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)).encode()
            self.send_response(code)
            self.send_header(
                "Content-Type",
                "application/json; charset=utf-8" if not isinstance(body, str) else "text/plain",
            )
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _drop(self) -> None:
            self.close_connection = True
            if fake.drop_mode == "partial":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "4096")
                self.end_headers()
                self.wfile.write(b'{"result": [{"ID": "1"')
                self.wfile.flush()

    return Handler
