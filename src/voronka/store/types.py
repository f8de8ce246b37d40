"""Column types whose storage differs by dialect: dialect differences as data, not scattered ifs.

- ``UTCTime``: an aware UTC datetime in Python. SQLite keeps integer microseconds since the epoch (sortable,
  compact, and read straight into NumPy by the analytics layer); PostgreSQL keeps ``timestamptz``.
- ``Money``: a Decimal in Python. PostgreSQL keeps ``numeric(20, 4)``; SQLite, which has no decimal type,
  keeps a REAL rounded to 4 places and gives back the shortest decimal that round-trips.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Dialect, Float, Numeric
from sqlalchemy.dialects.postgresql import TIMESTAMP
from sqlalchemy.types import TypeDecorator, TypeEngine

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CENT = Decimal("0.01")


def to_micros(dt: datetime) -> int:
    delta = dt.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(us: int) -> datetime:
    from datetime import timedelta

    return _EPOCH + timedelta(microseconds=int(us))


class UTCTime(TypeDecorator[datetime]):
    impl = BigInteger
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(TIMESTAMP(timezone=True))
        return dialect.type_descriptor(BigInteger())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} reached the store; parse times with parse_time()")
        if dialect.name == "postgresql":
            return value.astimezone(UTC)
        return to_micros(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        return from_micros(value)


class Money(TypeDecorator[Decimal]):
    impl = Numeric(20, 4)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Float(asdecimal=False))
        return dialect.type_descriptor(Numeric(20, 4, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return round(float(value), 4)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        cents = exact.quantize(_CENT)
        return cents if cents == exact else exact.normalize()
