"""Russian and English: the user's choice, then Accept-Language; numbers, money and dates per locale."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from tests.web.conftest import Site
from voronka.web.i18n import Translator, catalog, negotiate

_WEB = Path(__file__).parents[2] / "src" / "voronka" / "web"


def test_negotiation_order() -> None:
    assert negotiate(None, None, None) == "en"
    assert negotiate(None, None, "ru-RU,ru;q=0.9,en;q=0.8") == "ru"
    assert negotiate(None, None, "de-DE, en;q=0.5, ru;q=0.7") == "ru"
    assert negotiate(None, None, "de, fr;q=0.5") == "en"
    assert negotiate(None, None, "ru;q=0") == "en"
    assert negotiate(None, "en", "ru") == "en"  # the cookie over the browser
    assert negotiate("ru", "en", "en") == "ru"  # the user's own choice over both


def test_formats_per_locale() -> None:
    ru, en = Translator("ru"), Translator("en")
    assert ru.number(1234567) == "1\xa0234\xa0567" and en.number(1234567) == "1,234,567"
    assert ru.money(Decimal("150000"), "RUB") == "150\xa0000\xa0₽" and en.money(Decimal("150000"), "USD") == "$150,000"
    assert ru.pct(0.1234) == "12,3\xa0%" and en.pct(0.1234) == "12.3%"
    assert ru.days(2.25) == "2,2" or ru.days(2.25) == "2,3"
    when = datetime(2026, 3, 12, 9, 30, tzinfo=UTC)
    assert ru.date(when) == "12 мар. 2026\u202fг." and en.date(when) == "Mar 12, 2026"


def test_every_message_has_a_russian_translation() -> None:
    ids: set[str] = set()
    for path in list(_WEB.rglob("*.html")) + list(_WEB.rglob("*.py")):
        for m in re.finditer(r"""(?:\b_|gettext)\(\s*(?:"([^"\\]*)"|'([^'\\]*)')""", path.read_text(encoding="utf-8")):
            ids.add(m.group(1) if m.group(1) is not None else m.group(2))
    missing = sorted(ids - set(catalog("ru")))
    assert not missing, f"add these to locale/ru/LC_MESSAGES/messages.po: {missing}"
    dynamic = ["admin", "head", "manager", "forward", "lost", "won", "reopen", "call", "task", "owner", "month", "open"]
    assert all(k in catalog("ru") for k in dynamic)


def test_pages_follow_accept_language_then_the_users_choice(site: Site) -> None:
    c = site.client()
    assert "Вход" in c.get("/login", headers={"accept-language": "ru-RU,ru;q=0.9"}).text
    assert ">Sign in<" in c.get("/login", headers={"accept-language": "en-US"}).text
    head = site.client("head", headers={"accept-language": "ru"})
    pid = site.ws.pipeline("Sales").id
    board = head.get(f"/board/{pid}").text
    assert "Доска" in board and "280\xa0000\xa0₽" in board
    r = head.post("/lang", data={"lang": "en", "csrf": head.headers["x-test-csrf"], "next": f"/board/{pid}"})
    assert r.status_code == 200 and "Show more" not in r.text and ">Board<" in r.text and "280,000" in r.text
    # Saved for the user: a new browser with a Russian Accept-Language still gets English.
    again = site.client("head", headers={"accept-language": "ru"})
    assert ">Board<" in again.get(f"/board/{pid}").text
    bad = head.post("/lang", data={"lang": "xx", "csrf": head.headers["x-test-csrf"]})
    assert bad.status_code == 422
