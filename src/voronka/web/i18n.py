"""The interface language and locale formats.

Messages are written in English in the code and templates (``_("Board")``); ``locale/<lang>/LC_MESSAGES/
messages.po`` holds each language's gettext catalog, read with Babel when first needed. The language of a request
is the user's own choice, else the ``lang`` cookie (set by the switch on the sign-in page), else the best match of
the browser's ``Accept-Language``, else English. Numbers, money and dates are formatted with Babel's CLDR data
for that locale (``1 234,5`` and ``12.03.2026`` in Russian, ``1,234.5`` and ``Mar 12, 2026`` in English).
"""

from __future__ import annotations

import functools
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, parse_pattern

LANGUAGES = {"en": "English", "ru": "Русский"}
DEFAULT = "en"
_LOCALE_DIR = Path(__file__).parent / "locale"


@functools.cache
def catalog(lang: str) -> dict[str, str]:
    """The translated messages of ``lang`` (empty for English, the source language)."""
    path = _LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    if lang == DEFAULT or not path.exists():
        return {}
    with path.open("rb") as f:
        cat = read_po(f, locale=lang)
    return {str(m.id): str(m.string) for m in cat if m.id and m.string and not m.fuzzy}


def negotiate(chosen: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The language for a request: the user's choice, the cookie, then ``Accept-Language`` by its q-values."""
    for lang in (chosen, cookie):
        if lang in LANGUAGES:
            return lang
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        ranked.append((-q, i, tag.strip().lower().split("-")[0]))
    for neg_q, _i, lang in sorted(ranked):
        if neg_q < 0 and lang in LANGUAGES:
            return lang
    return DEFAULT


class Translator:
    """Messages and formats of one language; templates get it as ``t`` and its ``gettext`` as ``_``."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else DEFAULT
        self._messages = catalog(self.lang)
        self._locale = Locale.parse(self.lang)
        # The locale's own currency pattern ("150 000 ₽", "$150,000"), in whole units: a board is no ledger.
        self._money_pattern = parse_pattern(self._locale.currency_formats["standard"].pattern)
        self._money_pattern.frac_prec = (0, 0)

    def gettext(self, message: str, **values: object) -> str:
        text = self._messages.get(message, message)
        return text.format(**values) if values else text

    def number(self, value: float | int | Decimal | None, digits: int = 0) -> str:
        if value is None:
            return "—"
        return format_decimal(value, format=f"#,##0{'.' + '0' * digits if digits else ''}", locale=self.lang)

    def money(self, value: float | Decimal | None, currency: str = "RUB") -> str:
        if value is None:
            return "—"
        return self._money_pattern.apply(value, self._locale, currency=currency, currency_digits=False)

    def pct(self, value: float | None, digits: int = 1) -> str:
        if value is None:
            return "—"
        pattern = parse_pattern(self._locale.percent_formats[None].pattern)
        pattern.frac_prec = (digits, digits)
        return pattern.apply(value, self._locale)

    def interval(self, low: float | None, high: float | None) -> str:
        if low is None or high is None:
            return ""
        return f"{self.pct(low)} – {self.pct(high)}"

    def days(self, value: float | None) -> str:
        return "—" if value is None else self.number(value, 1)

    def date(self, value: datetime | None) -> str:
        return "" if value is None else format_date(value, format="medium", locale=self.lang)

    def datetime(self, value: datetime | None) -> str:
        return "" if value is None else format_datetime(value, format="short", tzinfo=value.tzinfo, locale=self.lang)
