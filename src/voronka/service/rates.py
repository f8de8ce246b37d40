"""Dated currency rates and conversion of amounts into a reporting currency.

A rate says: from ``day`` on (until the next rate of the pair), 1 ``currency`` = ``rate`` ``quote``. An amount in
currency C at time t converts to Q with the latest C→Q rate on or before t's day; when only a Q→C rate is known,
its inverse is used. No rate on or before that day is an error that names the pair and the day.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import and_, select

from voronka.domain.parse import parse_time
from voronka.errors import InputError
from voronka.store.schema import currency_rates
from voronka.store.workspace import WorkspaceStore

if TYPE_CHECKING:
    import pandas as pd


def _code(text: str, what: str) -> str:
    code = text.strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise InputError(f"Malformed {what} {text!r}: use a 3-letter ISO code such as RUB, USD, EUR.")
    return code


def set_rate(store: WorkspaceStore, currency: str, quote: str, rate: float, day: str | date | None = None) -> None:
    """Set the rate 1 ``currency`` = ``rate`` ``quote`` from ``day`` (default today), replacing that day's rate."""
    cur, quo = _code(currency, "currency"), _code(quote, "quote currency")
    if cur == quo:
        raise InputError(f"A rate converts between two currencies; got {cur} → {quo}.")
    if not rate > 0:
        raise InputError(f"Rate {rate!r} for {cur} → {quo}: a rate must be positive, e.g. 92.5.")
    d = day if isinstance(day, date) else parse_time(day, what="--day date").date() if day else date.today()
    key = and_(currency_rates.c.currency == cur, currency_rates.c.quote == quo, currency_rates.c.day == d)
    with store.transaction() as conn:
        if conn.execute(currency_rates.update().where(key).values(rate=float(rate))).rowcount == 0:
            conn.execute(currency_rates.insert().values(currency=cur, quote=quo, day=d, rate=float(rate)))


def import_rates(store: WorkspaceStore, path: str | Path, quote: str) -> int:
    """Import a CSV of rates with columns ``date``, ``currency``, ``rate`` (1 currency = rate ``quote``); all the
    rows land in one transaction or none does. Returns the number of rows."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, sep=None, engine="python", dtype=str)
    except (OSError, ValueError) as exc:
        raise InputError(f"Cannot read rates file {str(path)!r}: {exc}. Give a CSV with date,currency,rate.") from None
    cols = {c.strip().lower(): c for c in frame.columns}
    missing = [c for c in ("date", "currency", "rate") if c not in cols]
    if missing:
        raise InputError(f"Rates file {str(path)!r} lacks the column(s) {', '.join(missing)}: need date,currency,rate.")
    with store.transaction():
        for i, row in enumerate(frame.itertuples(index=False), start=2):
            values = row._asdict()
            text = str(values[cols["rate"]]).strip().replace(",", ".")
            try:
                rate = float(text)
            except ValueError:
                raise InputError(f"{path}, row {i}, column 'rate': value {text!r} is not a number.") from None
            set_rate(store, str(values[cols["currency"]]), quote, rate, str(values[cols["date"]]))
    return len(frame)


@dataclass
class Rates:
    """All the workspace's rates, to convert amounts (see the module docstring)."""

    series: dict[tuple[str, str], tuple[list[date], list[float]]]

    def rate(self, currency: str, quote: str, on: date) -> float:
        """How many ``quote`` one ``currency`` is worth on ``on``."""
        if currency == quote:
            return 1.0
        for pair, invert in (((currency, quote), False), ((quote, currency), True)):
            if pair in self.series:
                days, values = self.series[pair]
                i = bisect.bisect_right(days, on) - 1
                if i >= 0:
                    return 1 / values[i] if invert else values[i]
        raise InputError(
            f"No {currency} → {quote} rate on or before {on.isoformat()}: add one with "
            f"voronka rates set {currency} {quote} RATE --day {on.isoformat()} (or voronka rates import FILE)."
        )

    def convert(self, amount: float, currency: str, quote: str, at: datetime | date) -> float:
        return amount * self.rate(currency, quote, at.date() if isinstance(at, datetime) else at)


def load_rates(store: WorkspaceStore) -> Rates:
    r = currency_rates
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(r.c.currency, r.c.quote, r.c.day, r.c.rate).order_by(r.c.currency, r.c.quote, r.c.day)
        )
        series: dict[tuple[str, str], tuple[list[date], list[float]]] = {}
        for row in rows:
            days, values = series.setdefault((row.currency, row.quote), ([], []))
            days.append(row.day)
            values.append(float(row.rate))
    return Rates(series)


def list_rates(store: WorkspaceStore) -> pd.DataFrame:
    """Every rate: currency, quote, day, rate."""
    import pandas as pd

    rates = load_rates(store)
    rows = [
        {"currency": c, "quote": q, "day": d.isoformat(), "rate": v}
        for (c, q), (days, values) in sorted(rates.series.items())
        for d, v in zip(days, values, strict=True)
    ]
    return pd.DataFrame(rows, columns=["currency", "quote", "day", "rate"])
