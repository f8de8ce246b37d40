"""Parsing of user-typed values: times and amounts. Errors say what was given and what is expected."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

from voronka.errors import InputError

_SPACES = re.compile(r"[\s\u00a0\u202f]")
MAX_AMOUNT = Decimal("1e13")  # money is exact to the kopeck below this on every backend


def parse_time(value: str | datetime | date, *, what: str = "time") -> datetime:
    """Parse an ISO 8601 date or date-time (or ``dd.mm.yyyy[ hh:mm[:ss]]``) into an aware UTC datetime.

    A value without a time zone is taken as UTC.

    >>> parse_time("2026-03-01T10:30")
    datetime.datetime(2026, 3, 1, 10, 30, tzinfo=datetime.timezone.utc)
    >>> parse_time("01.03.2026")
    datetime.datetime(2026, 3, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    else:
        text = value.strip()
        dt = _parse_text(text, what)
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _parse_text(text: str, what: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    for fmt in ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise InputError(
        f"Malformed {what} {text!r}: write it as ISO 8601, e.g. 2026-03-01 or 2026-03-01T14:30 (or 01.03.2026 14:30)."
    )


def parse_amount(value: str | int | float | Decimal, *, what: str = "amount") -> Decimal:
    """Parse a money amount: ``1234.5``, ``1 234,50`` (decimal comma, space thousands) are all accepted.

    >>> parse_amount("1 234,50")
    Decimal('1234.50')
    """
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | float):
        result = Decimal(str(value))
    else:
        text = _SPACES.sub("", value)
        if text.count(",") == 1 and "." not in text:
            text = text.replace(",", ".")
        try:
            result = Decimal(text)
        except InvalidOperation:
            result = Decimal("NaN")
    if not result.is_finite():
        raise InputError(f"Malformed {what} {value!r}: write a number such as 150000 or 1 234,50 (no currency sign).")
    if result < 0:
        raise InputError(f"Negative {what} {value!r}: an amount must be zero or more.")
    if result >= MAX_AMOUNT:
        raise InputError(f"Too large {what} {value!r}: at most 9 999 999 999 999,99.")
    return result
