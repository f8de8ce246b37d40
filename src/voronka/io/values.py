"""Parsing of values as spreadsheets and CRMs write them: decimal commas, NBSP thousands, Russian dates.

Each parser returns the value or raises ``ValueError`` whose message says what is expected; readers turn that
into a :class:`~voronka.io.problems.Problem` with the file, row and column.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

_SPACES = re.compile(r"[\s\u00a0\u202f']")
_CURRENCY_MARKS = re.compile(r"\s*(руб\.?|р\.|₽|rub|usd|\$|eur|€)\s*$", re.IGNORECASE)
_DMY = re.compile(r"^(\d{1,2})[./](\d{1,2})[./](\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_EXCEL_EPOCH = datetime(1899, 12, 30, tzinfo=UTC)
_EXCEL_RANGE = (20_000, 80_000)  # 1954-10-03 .. 2119-01-09: a bare "2026" is a year, not Excel day 2026
MAX_AMOUNT = Decimal("1e13")  # money is exact to the kopeck below this on every backend (SQLite keeps a REAL)


def parse_decimal(text: str) -> Decimal:
    """``1234.5``, ``1 234,50``, ``1\u00a0234,5``, ``1,234.50``, ``1234 руб.`` → Decimal.

    >>> parse_decimal("1 234,5 руб.")
    Decimal('1234.5')
    """
    raw = text.strip()
    body = _CURRENCY_MARKS.sub("", raw)
    body = _SPACES.sub("", body)
    if "," in body and "." in body:
        # The later separator is the decimal one: 1.234,50 or 1,234.50.
        if body.rfind(",") > body.rfind("."):
            body = body.replace(".", "").replace(",", ".")
        else:
            body = body.replace(",", "")
    elif body.count(",") == 1:
        body = body.replace(",", ".")
    try:
        value = Decimal(body) if "e" not in body.lower() else Decimal("NaN")
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise ValueError("not a number: write digits with an optional decimal comma, e.g. 1 234,50")
    if abs(value) >= MAX_AMOUNT:
        raise ValueError("too large for an amount: at most 9 999 999 999 999,99")
    return value


def parse_datetime(text: str, *, excel_serial: bool = True) -> datetime:
    """Dates as CRMs and Excel write them, as aware UTC datetimes (a value without a zone is UTC).

    Accepts ``dd.mm.yyyy[ hh:mm[:ss]]``, ISO 8601 (with ``T`` or a space, optional zone or ``UTC`` suffix),
    and Excel serial day numbers (``45230`` or ``45230.5``).

    >>> parse_datetime("01.03.2026 14:30")
    datetime.datetime(2026, 3, 1, 14, 30, tzinfo=datetime.timezone.utc)
    """
    raw = text.strip()
    if not raw:
        raise ValueError("empty date")
    m = _DMY.match(raw)
    if m:
        d, mo, y, hh, mm, ss = m.groups()
        try:
            return datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), int(ss or 0), tzinfo=UTC)
        except ValueError as exc:
            raise ValueError(f"impossible date ({exc}); expected dd.mm.yyyy") from None
    iso = raw[:-4] if raw.endswith(" UTC") else raw
    try:
        dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        pass
    else:
        return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    if excel_serial:
        try:
            serial = float(raw.replace(",", "."))
        except ValueError:
            pass
        else:
            if _EXCEL_RANGE[0] <= serial < _EXCEL_RANGE[1]:
                return _EXCEL_EPOCH + timedelta(days=serial)
    raise ValueError("not a date: expected dd.mm.yyyy [hh:mm[:ss]], ISO 8601 (2026-03-01 14:30) or an Excel date")
