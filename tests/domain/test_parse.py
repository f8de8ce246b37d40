"""Parsing of user-typed times and amounts: what is accepted, and errors that name the bad value."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from voronka.domain.parse import parse_amount, parse_time
from voronka.errors import InputError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T10:30", datetime(2026, 3, 1, 10, 30, tzinfo=UTC)),
        ("2026-03-01 10:30:15", datetime(2026, 3, 1, 10, 30, 15, tzinfo=UTC)),
        ("2026-03-01T10:30Z", datetime(2026, 3, 1, 10, 30, tzinfo=UTC)),
        ("2026-03-01T13:30+03:00", datetime(2026, 3, 1, 10, 30, tzinfo=UTC)),
        ("01.03.2026", datetime(2026, 3, 1, tzinfo=UTC)),
        ("01.03.2026 14:30", datetime(2026, 3, 1, 14, 30, tzinfo=UTC)),
        ("01.03.2026 14:30:05", datetime(2026, 3, 1, 14, 30, 5, tzinfo=UTC)),
        ("  2026-03-01  ", datetime(2026, 3, 1, tzinfo=UTC)),
    ],
)
def test_times_parse_to_aware_utc(text: str, expected: datetime) -> None:
    got = parse_time(text)
    assert got == expected
    assert got.tzinfo is UTC


def test_datetime_and_date_values() -> None:
    msk = timezone(timedelta(hours=3))
    assert parse_time(datetime(2026, 1, 1, 3, 0, tzinfo=msk)) == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_time(datetime(2026, 1, 1, 3, 0)).tzinfo is UTC  # naive means UTC
    assert parse_time(date(2026, 1, 2)) == datetime(2026, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2026-13-45", "yesterday", "31.02.2026", "2026/03/01", ""])
def test_malformed_time_names_the_value_and_what_it_was(text: str) -> None:
    with pytest.raises(InputError, match="Malformed --at time") as err:
        parse_time(text, what="--at time")
    assert repr(text) in str(err.value)
    assert "ISO 8601" in str(err.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("150000", Decimal("150000")),
        ("1234.5", Decimal("1234.5")),
        ("1 234,50", Decimal("1234.50")),
        ("1\u00a0234\u00a0567,89", Decimal("1234567.89")),
        ("1\u202f000", Decimal("1000")),
        ("0", Decimal("0")),
        (1500, Decimal("1500")),
        (0.1, Decimal("0.1")),
        (Decimal("99.99"), Decimal("99.99")),
    ],
)
def test_amounts(value: str | int | float | Decimal, expected: Decimal) -> None:
    got = parse_amount(value)
    assert isinstance(got, Decimal)
    assert got == expected


@pytest.mark.parametrize("text", ["abc", "12,5,3", "1.2.3", "NaN", "Infinity", "₽100", ""])
def test_malformed_amount_names_the_value(text: str) -> None:
    with pytest.raises(InputError, match="Malformed amount") as err:
        parse_amount(text)
    assert repr(text) in str(err.value)


def test_negative_amount_is_refused() -> None:
    with pytest.raises(InputError, match=r"Negative amount '-5'"):
        parse_amount("-5")
