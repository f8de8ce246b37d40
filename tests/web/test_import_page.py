"""The import page: upload a Russian CSV (Windows-1251, `;`), preview and dry run, fix the mapping, import."""

from __future__ import annotations

import re
from decimal import Decimal

from tests.web.conftest import Site

CSV = (
    "Сделка;Этап;Ответственный;Бюджет;ИД\r\n"
    "Кухня для Орловой;Call;Anna;120 000;A-1\r\n"
    "Шкаф для Лебедева;Contract;Boris;80 000,50;A-2\r\n"
).encode("cp1251")


def _token(html: str) -> str:
    found = re.search(r'action="/settings/import/([A-Za-z0-9_-]+)"', html)
    assert found, html[-3000:]
    return found.group(1)


def test_upload_preview_fix_mapping_and_import(site: Site) -> None:
    head = site.client("head")
    csrf = head.headers["x-test-csrf"]
    before = len(site.ws.users())
    r = head.post(
        "/settings/import",
        data={"pipeline": "Sales", "currency": "RUB", "csrf": csrf},
        files={"file": ("deals.csv", CSV, "text/csv")},
    )
    assert r.status_code == 200, r.text
    assert "Кухня для Орловой" in r.text  # decoded from Windows-1251
    assert 'data-testid="import-dry-run"' in r.text and "nothing was saved" in r.text
    assert site.ws.deal(site.anna_deal).title == "Kitchen for Ivanov" and len(site.ws.users()) == before
    token = _token(r.text)
    mapping = "columns:\n  title: Сделка\n  stage: Этап\n  owner: Ответственный\n  amount: Бюджет\n  external_id: ИД\n"
    again = head.post(f"/settings/import/{token}", data={"mapping": mapping, "pipeline": "Sales", "csrf": csrf})
    assert "read 2, inserted 2" in again.text
    done = head.post(
        f"/settings/import/{token}", data={"action": "import", "mapping": mapping, "pipeline": "Sales", "csrf": csrf}
    )
    assert done.status_code == 200 and 'data-testid="import-summary"' in done.text and "inserted 2" in done.text
    imported = site.ws.deal_by_external_id("A-2", source="file")
    assert (imported.title, imported.owner, imported.amount) == ("Шкаф для Лебедева", "Boris", Decimal("80000.5"))
    # The upload is gone once imported.
    gone = head.post(f"/settings/import/{token}", data={"action": "import", "mapping": mapping, "csrf": csrf})
    assert gone.status_code == 422 and "unknown or already imported" in gone.text


def test_import_refuses_bad_files_and_managers(site: Site) -> None:
    head = site.client("head")
    csrf = head.headers["x-test-csrf"]
    r = head.post("/settings/import", data={"csrf": csrf}, files={"file": ("deals.exe", b"MZ", "application/x")})
    assert r.status_code == 422 and "upload a .csv" in r.text
    r = head.post("/settings/import/..%2F..%2Fetc", data={"action": "import", "csrf": csrf})
    assert r.status_code in (404, 422)
    anna = site.client("anna")
    r = anna.post(
        "/settings/import", data={"csrf": anna.headers["x-test-csrf"]}, files={"file": ("d.csv", CSV, "text/csv")}
    )
    assert r.status_code == 403
    r = anna.post("/settings/import", files={"file": ("d.csv", CSV, "text/csv")})  # and no CSRF token
    assert r.status_code == 403
