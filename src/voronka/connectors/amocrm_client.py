"""A small client of the amoCRM / Kommo REST API v4 over httpx.

- Authorisation: a long-lived token sent as ``Authorization: Bearer <token>``.
- Rate limit: amoCRM allows 7 requests per second per account and answers ``429 Too Many Requests`` above
  it (an IP that keeps going is blocked with ``403``). The client spaces its requests to at most ``rate`` per
  second and retries a 429 after ``Retry-After`` seconds, or with exponential back-off without the header.
- Server errors (5xx) and broken connections are retried a bounded number of times with the same back-off;
  then :class:`AmoCrmError` says what failed and how to go on.
- Lists are paginated (``page`` / ``limit``, ``_links.next``); a page past the end is ``204 No Content``.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any

import httpx

from voronka.errors import InputError, VoronkaError

DEFAULT_RATE = 7.0
RETRIED = frozenset({429, 500, 502, 503, 504})
TOKEN_HELP = (
    "Create a long-lived token in amoCRM (Settings → Integrations → your private integration → "
    "Keys and scopes → Generate long-lived token) and pass it with --token or the AMOCRM_TOKEN variable."
)


class AmoCrmError(VoronkaError):
    """amoCRM could not be read: the network, the server or the answer failed."""


class AmoCrmAuthError(AmoCrmError):
    """amoCRM refused the token (missing, wrong, expired, or without the rights)."""


class AmoCrmNotFoundError(AmoCrmError):
    """amoCRM has no such address (HTTP 404): a wrong account URL, or a method the account lacks."""


def normalize_base_url(url: str | None) -> str:
    """``SUBDOMAIN.amocrm.ru``, ``https://SUBDOMAIN.kommo.com/leads`` … → ``https://host``.

    >>> normalize_base_url("example.amocrm.ru/leads/")
    'https://example.amocrm.ru'
    """
    raw = (url or "").strip()
    if not raw:
        raise InputError("No amoCRM address: pass --url https://SUBDOMAIN.amocrm.ru (or set AMOCRM_URL).")
    if "://" not in raw:
        raw = "https://" + raw
    parts = urllib.parse.urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(
            f"{url!r} is not an amoCRM address: give it as https://SUBDOMAIN.amocrm.ru or https://SUBDOMAIN.kommo.com."
        )
    return f"{parts.scheme}://{parts.netloc}"


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (a number or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class AmoCrmClient:
    """GET requests to one amoCRM account, paced and retried.

    Parameters
    ----------
    base_url
        The account's address, e.g. ``https://example.amocrm.ru``.
    token
        A long-lived token of a private integration.
    transport
        An httpx transport (tests); the network by default.
    max_retries
        How many times one request is retried after 429, 5xx or a broken connection.
    sleep, clock
        Waiting and the monotonic clock (``time.sleep``, ``time.monotonic``); tests pass fakes.
    rate
        At most this many requests per second (amoCRM allows 7).
    backoff, max_wait
        The first back-off in seconds (doubled on each retry) and the longest single wait.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        transport: httpx.BaseTransport | None = None,
        max_retries: int = 4,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
        rate: float = DEFAULT_RATE,
        backoff: float = 1.0,
        max_wait: float = 300.0,
        timeout: float = 30.0,
    ) -> None:
        secret = (token or "").strip()
        self.base_url = normalize_base_url(base_url)
        if not secret:
            raise AmoCrmAuthError(f"No amoCRM token for {self.base_url}. {TOKEN_HELP}")
        self.max_retries = max(0, max_retries)
        self.backoff, self.max_wait = backoff, max_wait
        self._sleep, self._clock = sleep or time.sleep, clock or time.monotonic
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._last: float | None = None
        self.requests = 0
        self._http = httpx.Client(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            headers={
                "Authorization": f"Bearer {secret}",
                "Accept": "application/json",
                "User-Agent": "voronka-amocrm/1",
            },
        )

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.base_url).netloc

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AmoCrmClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- one request ----------------------------------------------------------------------------------------

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """GET ``path`` and return its JSON, or None for ``204 No Content`` (an empty page)."""
        what = _describe(path, params)
        last = ""
        for attempt in range(self.max_retries + 1):
            self._throttle()
            self.requests += 1
            try:
                response = self._http.get(path, params=params)
            except httpx.TransportError as exc:
                last = f"the connection broke ({type(exc).__name__}: {exc or 'no details'})"
                wait = None
            else:
                if response.status_code not in RETRIED:
                    return self._answer(response, what)
                last = f"HTTP {response.status_code} {response.reason_phrase}"
                wait = _retry_after(response.headers.get("Retry-After"))
            if attempt < self.max_retries:
                self._sleep(min(self.max_wait, wait if wait is not None else self.backoff * 2**attempt))
        raise AmoCrmError(self._gave_up(what, last))

    def _gave_up(self, what: str, last: str) -> str:
        tries = self.max_retries + 1
        if last.startswith("HTTP 429"):
            hint = (
                "amoCRM allows 7 requests per second per account and another integration may be using the "
                "quota; wait a few minutes and run the sync again."
            )
        elif last.startswith("HTTP 5"):
            hint = "amoCRM has trouble on its side; run the sync again later."
        else:
            hint = f"Check the network and the address {self.base_url}, then run the sync again."
        return (
            f"amoCRM at {self.base_url} did not answer GET {what} after {tries} attempt(s); the last: "
            f"{last}. Nothing was written. {hint} The next sync starts from the last completed one."
        )

    def _throttle(self) -> None:
        now = self._clock()
        if self._last is not None:
            wait = self._last + self._interval - now
            if wait > 0:
                self._sleep(wait)
                now += wait
        self._last = now

    def _answer(self, response: httpx.Response, what: str) -> dict[str, Any] | None:
        code = response.status_code
        if code == 204:
            return None
        if code == 401:
            raise AmoCrmAuthError(
                f"amoCRM at {self.base_url} refused the token (HTTP 401 Unauthorized) on GET {what}: it is "
                f"wrong, expired or revoked, or belongs to another account. {TOKEN_HELP}"
            )
        if code == 403:
            raise AmoCrmAuthError(
                f"amoCRM at {self.base_url} refused access (HTTP 403 Forbidden) on GET {what}: the token's "
                f"user lacks the rights for this data, or amoCRM blocked this IP for going over the rate "
                f"limit. Use a token of an account administrator, or wait and retry later.{_detail(response)}"
            )
        if code == 402:
            raise AmoCrmError(
                f"amoCRM at {self.base_url} says the account is not paid (HTTP 402 Payment "
                f"Required); the API answers again once the subscription is renewed."
            )
        if code == 404:
            raise AmoCrmNotFoundError(
                f"amoCRM at {self.base_url} has no GET {what} (HTTP 404). Is the address the account's own, "
                f"like https://SUBDOMAIN.amocrm.ru or https://SUBDOMAIN.kommo.com?"
            )
        if code >= 300:
            raise AmoCrmError(
                f"amoCRM at {self.base_url} answered HTTP {code} {response.reason_phrase} on GET "
                f"{what}.{_detail(response)}"
            )
        try:
            data = response.json()
        except ValueError:
            raise AmoCrmError(
                f"amoCRM at {self.base_url} answered GET {what} with something that is not JSON "
                f"({response.text[:80]!r}). Is the address the account's own, like https://SUBDOMAIN.amocrm.ru?"
            ) from None
        if not isinstance(data, dict):
            raise AmoCrmError(f"amoCRM at {self.base_url} answered GET {what} with JSON that is not an object.")
        return data

    # -- lists ----------------------------------------------------------------------------------------------

    def pages(self, path: str, key: str, params: dict[str, Any] | None = None) -> Iterator[list[dict[str, Any]]]:
        """Each page of the list ``_embedded[key]`` at ``path``, following ``_links.next`` to the end."""
        target: str = path
        query: dict[str, Any] | None = dict(params or {})
        seen: set[str] = set()
        while True:
            data = self.get(target, query)
            if data is None:
                return
            items = (data.get("_embedded") or {}).get(key) or []
            if not isinstance(items, list):
                raise AmoCrmError(f"amoCRM at {self.base_url} answered GET {path} without a list of {key}.")
            if not items:
                return
            yield items
            nxt = ((data.get("_links") or {}).get("next") or {}).get("href")
            if not nxt:
                return
            parts = urllib.parse.urlsplit(nxt)  # the path and query, on our own address (links may name a shard)
            target, query = parts.path + (f"?{parts.query}" if parts.query else ""), None
            if target in seen:
                return
            seen.add(target)

    def all(self, path: str, key: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a paginated list."""
        return [item for page in self.pages(path, key, params) for item in page]


def _describe(path: str, params: dict[str, Any] | None) -> str:
    if not params:
        return path
    shown = {k: v for k, v in params.items() if k not in ("with", "limit")}
    return path + ("?" + urllib.parse.urlencode(shown, doseq=True, safe="[]") if shown else "")


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    text = " ".join(str(body[k]) for k in ("title", "detail") if body.get(k))
    return f" amoCRM says: {text}." if text else ""
