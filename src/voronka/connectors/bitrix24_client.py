"""A Bitrix24 REST client over an inbound webhook ``https://PORTAL/rest/USER_ID/CODE/``.

- Requests are JSON POSTs to ``<webhook>/<method>.json``; answers are ``{"result", "total", "next", "time"}`` or
  ``{"error", "error_description"}``.
- A token bucket keeps to Bitrix24's intensity limit (2 requests/s with a small burst); an answer of
  ``QUERY_LIMIT_EXCEEDED`` / HTTP 429 / 503 and a broken connection are retried with exponential back-off a
  bounded number of times, then end in a :class:`Bitrix24Error` that says what failed and how to fix it.
- :meth:`Bitrix24Client.list_many` reads whole lists: the first pages of several lists in one ``batch``, then
  the remaining ``start`` offsets 50 pages per ``batch``.
"""

from __future__ import annotations

import functools
import re
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import certifi
import httpx

from voronka.errors import InputError, VoronkaError

BATCH_LIMIT = 50
WEBHOOK_HELP = (
    "Create one in Bitrix24: Applications → Developer resources → Other → Inbound webhook, tick the CRM (crm) "
    "and Users (user_brief) permissions, save, and copy the URL https://PORTAL.bitrix24.ru/rest/USER_ID/CODE/."
)
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_AUTH_ERRORS = frozenset(
    {"NO_AUTH_FOUND", "INVALID_CREDENTIALS", "expired_token", "invalid_token", "WRONG_AUTH_TYPE", "PORTAL_DELETED"}
)
_LIMIT = "QUERY_LIMIT_EXCEEDED"
_WEBHOOK = re.compile(r"^(?P<scheme>https?)://(?P<host>[^/\s?#]+)/rest/(?P<user>\d+)/(?P<code>[A-Za-z0-9_]+)(/.*)?$")
_LOCAL = ("127.0.0.1", "localhost", "[::1]")


class Bitrix24Error(VoronkaError):
    """Bitrix24 answered with an error, or could not be reached."""


class Bitrix24AuthError(Bitrix24Error):
    """The webhook is wrong, deleted, or lacks a permission."""


class Bitrix24ConnectionError(Bitrix24Error):
    """The portal could not be reached, or the connection broke, after all retries."""


def mask(url: str) -> str:
    """The webhook URL with its secret code hidden, for messages."""
    return re.sub(r"(/rest/\d+/)[^/\s]+", r"\1***", url.strip())


@dataclass(frozen=True)
class Webhook:
    """A parsed inbound webhook URL."""

    base: str
    host: str
    user_id: str

    @classmethod
    def parse(cls, url: str) -> Webhook:
        m = _WEBHOOK.match(url.strip())
        if m is None:
            raise InputError(
                f"{mask(url)!r} is not a Bitrix24 inbound webhook URL; it looks like "
                f"https://PORTAL.bitrix24.ru/rest/USER_ID/CODE/. {WEBHOOK_HELP}"
            )
        host = m["host"]
        if m["scheme"] == "http" and not host.startswith(_LOCAL):
            raise InputError(f"Bitrix24 REST needs HTTPS: write {mask(url).replace('http://', 'https://', 1)!r}.")
        return cls(f"{m['scheme']}://{host}/rest/{m['user']}/{m['code']}/", host, m["user"])

    @property
    def shown(self) -> str:
        return mask(self.base)


@dataclass(frozen=True)
class Answer:
    """One method's answer: ``result`` plus the list fields ``total`` and ``next`` (None when absent)."""

    result: Any
    total: int | None = None
    next: int | None = None


def php_query(params: Mapping[str, Any]) -> str:
    """Parameters as PHP's ``http_build_query`` writes them (``filter[>ID]=5&select[0]=ID``), for ``batch``."""
    pairs: list[tuple[str, str]] = []

    def walk(key: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{key}[{k}]", v)
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                walk(f"{key}[{i}]", v)
        elif isinstance(value, bool):
            pairs.append((key, "Y" if value else "N"))
        else:
            pairs.append((key, "" if value is None else str(value)))

    for k, v in params.items():
        walk(str(k), v)
    return urlencode(pairs)


def rows_of(result: Any) -> list[dict[str, Any]]:
    """The records of a list answer: a JSON list, ``{"items": [...]}``, ``{"categories": [...]}`` or a PHP map."""
    if isinstance(result, list):
        return result
    if isinstance(result, dict):
        for key in ("items", "categories"):
            if isinstance(result.get(key), list):
                return list(result[key])
        return [v for v in result.values() if isinstance(v, dict)]
    return []


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}  # PHP writes an empty map as []


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


class TokenBucket:
    """``rate`` requests per second on average, up to ``burst`` at once; waits with the injected ``sleep``."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self.rate, self.burst, self.clock, self.sleep = rate, burst, clock, sleep
        self.tokens = float(burst)
        self.stamp = clock()

    def take(self) -> None:
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            self.sleep((1 - self.tokens) / self.rate)
            self.tokens, self.stamp = 1.0, self.clock()  # what the wait bought, even with a fake clock
        self.tokens -= 1


class Bitrix24Client:
    """Calls one portal's REST methods through an inbound webhook.

    Parameters
    ----------
    webhook_url
        ``https://PORTAL.bitrix24.ru/rest/USER_ID/CODE/`` (a method name after it is ignored).
    transport
        An httpx transport (tests); None for the network.
    sleep, clock
        Injected for tests, so back-off and the token bucket do not really wait.
    max_retries
        How many times a rate-limited or broken request is repeated before giving up.
    """

    def __init__(
        self,
        webhook_url: str,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        max_retries: int = 5,
        rate: float = 2.0,
        burst: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 32.0,
        timeout: float = 60.0,
    ) -> None:
        self.webhook = Webhook.parse(webhook_url)
        self.http = httpx.Client(transport=transport, timeout=timeout, headers={"User-Agent": "voronka"}, verify=_tls())
        self.bucket = TokenBucket(rate, burst, clock, sleep)
        self.sleep, self.max_retries = sleep, max_retries
        self.backoff, self.max_backoff = backoff, max_backoff
        self.requests = 0
        self.retries = 0
        self.server_time: str | None = None  # the portal's clock at the first answer (``time.date_start``)

    def __enter__(self) -> Bitrix24Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # -- one request ----------------------------------------------------------------------------------------

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> Answer:
        """Call ``method`` once (retried on rate limits and broken connections)."""
        data = self._post(method, dict(params or {}))
        return Answer(data.get("result"), _int(data.get("total")), _int(data.get("next")))

    def _post(self, method: str, payload: dict[str, Any], label: str | None = None) -> dict[str, Any]:
        """POST ``payload`` to ``method``; ``label`` names the call in messages (the methods of a batch)."""
        url, label = f"{self.webhook.base}{method}.json", label or method
        problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.retries += 1
            self.bucket.take()
            self.requests += 1
            try:
                resp = self.http.post(url, json=payload)
            except httpx.TransportError as exc:
                problem = f"the connection failed ({type(exc).__name__}: {exc or 'no details'})"
                self._wait(attempt, None)
                continue
            data = self._decode(label, resp)
            if data is not None:
                self._note_time(data)
                return data
            problem = f"it answered HTTP {resp.status_code} {_error_code(resp) or ''}".rstrip()
            self._wait(attempt, resp.headers.get("Retry-After"))
        raise self._gave_up(label, problem)

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        if attempt >= self.max_retries:
            return
        delay = min(self.max_backoff, self.backoff * 2**attempt)
        hinted = _int(retry_after)
        self.sleep(max(delay, float(hinted)) if hinted is not None else delay)

    def _gave_up(self, method: str, problem: str) -> Bitrix24Error:
        tries = self.max_retries + 1
        if problem.startswith("the connection failed"):
            return Bitrix24ConnectionError(
                f"Could not get {method} from Bitrix24 at {self.webhook.host}: {problem}, {tries} attempts. Check "
                f"the network and that https://{self.webhook.host} opens in a browser, then run the sync again."
            )
        limited = _LIMIT in problem or "HTTP 429" in problem
        why = (
            " (the portal allows about 2 requests/s, shared by every integration on it)"
            if limited
            else " (the portal had a temporary failure)"
        )
        return Bitrix24Error(
            f"Bitrix24 at {self.webhook.host} kept refusing {method}: {problem} after {tries} attempts{why}. "
            f"Wait a minute and run the sync again."
        )

    def _note_time(self, data: dict[str, Any]) -> None:
        if self.server_time is None:
            stamp = _as_dict(data.get("time")).get("date_start")
            self.server_time = stamp if isinstance(stamp, str) else None

    def _decode(self, method: str, resp: httpx.Response) -> dict[str, Any] | None:
        """The answer, or None when it should be retried; raises for errors that retrying cannot fix."""
        try:
            data = resp.json()
        except ValueError:
            data = None
        code = data.get("error") if isinstance(data, dict) else None
        if code == _LIMIT or (resp.status_code in _RETRY_STATUS and code not in _FATAL):
            return None
        if code is not None or resp.status_code >= 400:
            desc = str(data.get("error_description") or "") if isinstance(data, dict) else ""
            raise self.error(method, resp.status_code, str(code or ""), desc)
        if not isinstance(data, dict) or "result" not in data:
            raise Bitrix24Error(
                f"{self.webhook.host} answered {method} with something that is not a Bitrix24 REST answer "
                f"({resp.text[:80]!r}); check that {self.webhook.shown} is the inbound webhook URL."
            )
        return data

    def error(self, method: str, status: int, code: str, desc: str) -> Bitrix24Error:
        """The error for a refused call, saying what to do about it."""
        host, said = self.webhook.host, f"{code or 'HTTP ' + str(status)}{': ' + desc if desc else ''}"
        if code in _AUTH_ERRORS or status == 401:
            return Bitrix24AuthError(
                f"Bitrix24 at {host} refused the webhook {self.webhook.shown} ({said}) calling {method}: the URL "
                f"is mistyped, the webhook was deleted, or its employee was dismissed. {WEBHOOK_HELP}"
            )
        if code == "insufficient_scope":
            scope = "Users (user_brief)" if method.startswith("user.") else "CRM (crm)"
            return Bitrix24AuthError(
                f"The webhook may not call {method} ({said}). Edit the inbound webhook in Bitrix24 (Applications → "
                f"Developer resources, then the webhook in the list of integrations), tick the {scope} permission "
                f"and save."
            )
        hint = _HINTS.get(code, "Check the message above; run again with --debug for details.")
        return Bitrix24Error(f"Bitrix24 at {host} refused {method} ({said}). {hint}")

    # -- batch and lists ------------------------------------------------------------------------------------

    def batch(self, commands: Mapping[str, tuple[str, Mapping[str, Any]]]) -> dict[str, Answer]:
        """Run up to 50 ``name: (method, params)`` in one request; a command that fails raises."""
        if len(commands) > BATCH_LIMIT:
            raise ValueError(f"a Bitrix24 batch takes at most {BATCH_LIMIT} commands, got {len(commands)}")
        pending, done = dict(commands), {}
        for attempt in range(self.max_retries + 1):
            cmd = {name: f"{m}?{php_query(p)}" for name, (m, p) in pending.items()}
            label = "batch of " + ", ".join(dict.fromkeys(m for m, _ in pending.values()))
            inner = _as_dict(self._post("batch", {"halt": 0, "cmd": cmd}, label).get("result"))
            results, errors = _as_dict(inner.get("result")), _as_dict(inner.get("result_error"))
            totals, nexts = _as_dict(inner.get("result_total")), _as_dict(inner.get("result_next"))
            for name in list(pending):
                err = _as_dict(errors.get(name))
                if err.get("error") == _LIMIT:
                    continue
                if err:
                    raise self.error(
                        pending[name][0], 200, str(err.get("error")), str(err.get("error_description") or "")
                    )
                done[name] = Answer(results.get(name), _int(totals.get(name)), _int(nexts.get(name)))
                del pending[name]
            if not pending:
                return done
            self._wait(attempt, None)
        raise self._gave_up(next(iter(pending.values()))[0], f"it answered {_LIMIT} inside a batch")

    def batches(self, commands: Mapping[str, tuple[str, Mapping[str, Any]]]) -> dict[str, Answer]:
        """Any number of commands, 50 per ``batch`` request, in order."""
        out: dict[str, Answer] = {}
        names = list(commands)
        for start in range(0, len(names), BATCH_LIMIT):
            out.update(self.batch({n: commands[n] for n in names[start : start + BATCH_LIMIT]}))
        return out

    def list_many(self, lists: Mapping[str, tuple[str, Mapping[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
        """Every record of several list methods: first pages in one batch, the other pages 50 per batch."""
        first = self.batches({name: (m, {**p, "start": 0}) for name, (m, p) in lists.items()})
        pages: dict[tuple[str, int], list[dict[str, Any]]] = {(n, 0): rows_of(a.result) for n, a in first.items()}
        rest: dict[str, tuple[str, Mapping[str, Any]]] = {}
        for name, answer in first.items():
            method, params = lists[name]
            for start in _offsets(answer):
                rest[f"{name}|{start}"] = (method, {**params, "start": start})
        for key, answer in self.batches(rest).items():
            name, start = key.rsplit("|", 1)
            pages[(name, int(start))] = rows_of(answer.result)
        return {name: [r for (n, _), rows in sorted(pages.items()) if n == name for r in rows] for name in lists}

    def list_all(self, method: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.list_many({"list": (method, dict(params or {}))})["list"]


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every client: building one loads the CA bundle, which takes a noticeable while."""
    return ssl.create_default_context(cafile=certifi.where())


def _offsets(answer: Answer) -> Iterable[int]:
    if not answer.next or not answer.total:
        return range(0)
    return range(answer.next, answer.total, answer.next)


def _error_code(resp: httpx.Response) -> str | None:
    try:
        data = resp.json()
    except ValueError:
        return None
    return str(data.get("error")) if isinstance(data, dict) and data.get("error") else None


_FATAL = frozenset({"OVERLOAD_LIMIT", "OPERATION_TIME_LIMIT", "PORTAL_DELETED"})
_HINTS = {
    "ACCESS_DENIED": "REST is available only on commercial Bitrix24 plans, and the webhook's employee must be "
    "allowed to read deals; check the plan and the employee's CRM permissions.",
    "OVERLOAD_LIMIT": "The portal's REST API is blocked for overload; only Bitrix24 support can lift it.",
    "OPERATION_TIME_LIMIT": "The method used more than 480 s of the portal's time in 10 minutes and is blocked "
    "for a while; wait 10 minutes and run the sync again.",
    "ERROR_METHOD_NOT_FOUND": "This Bitrix24 does not have the method; an on-premise Bitrix24 must be updated "
    "(CRM module 21 or newer).",
    "ERROR_BATCH_LENGTH_EXCEEDED": "The batch was too long for the portal; report this as a Voronka bug.",
}
