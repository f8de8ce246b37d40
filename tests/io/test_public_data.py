"""The recipes of docs/datasets.md on the public data in ../shared/data, with counts checked against the raw files."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from voronka.cli.main import app

DATA = Path(__file__).parents[2].parent / "shared" / "data"
runner = CliRunner()


def read_csv(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


def need(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"public data not found at {path} (it lives in ../shared/data beside the project)")
    return path


def run(db: str, *args: str) -> str:
    result = runner.invoke(app, ["--db", db, *args])
    assert result.exit_code == 0, result.output
    return result.output


def funnel(db: str, pipeline: str) -> dict:
    import json

    return json.loads(run(db, "funnel", pipeline, "--format", "json"))


def test_maven_crm(tmp_path: Path) -> None:
    raw = need("maven_crm_sales_opportunities", "sales_pipeline.csv")
    rows = read_csv(raw)
    stages = Counter(r["deal_stage"] for r in rows)
    db = f"sqlite:///{tmp_path / 'ws.db'}"
    (tmp_path / "maven.yaml").write_text("columns:\n  title: opportunity_id\ncurrency: USD\n")
    run(
        db,
        "pipeline",
        "create",
        "Maven CRM",
        "--stages",
        "Prospecting,Engaging",
        "--won",
        "Won",
        "--lost",
        "Lost",
        "--reason-optional",
    )
    out = run(db, "import", "deals", str(raw), "--pipeline", "Maven CRM", "--mapping", str(tmp_path / "maven.yaml"))
    assert f"read {len(rows)}, inserted {len(rows)}" in out
    assert f"Note: {stages['Prospecting']} deals without a creation date" in out
    report = funnel(db, "Maven CRM")
    o = report["overall"]
    assert (o["entered"], o["won"], o["lost"], o["open"]) == (
        len(rows),
        stages["Won"],
        stages["Lost"],
        stages["Engaging"] + stages["Prospecting"],
    )
    assert [s["open"] for s in report["stages"][:2]] == [stages["Prospecting"], stages["Engaging"]]
    agents = {r["sales_agent"] for r in rows}
    by_owner = __import__("json").loads(run(db, "funnel", "Maven CRM", "--by", "owner", "--format", "json"))
    assert {g["group"] for g in by_owner["groups"]} == agents
    again = run(db, "import", "deals", str(raw), "--pipeline", "Maven CRM", "--mapping", str(tmp_path / "maven.yaml"))
    assert f"inserted 0, updated 0, unchanged {len(rows)}" in again


def test_olist_funnel(tmp_path: Path) -> None:
    mql = need("olist_marketing_funnel", "olist_marketing_qualified_leads_dataset.csv")
    won = need("olist_marketing_funnel", "olist_closed_deals_dataset.csv")
    leads = read_csv(mql)
    closed = read_csv(won)
    first = {r["mql_id"]: r["first_contact_date"] for r in leads}
    backwards = [r for r in closed if r["won_date"][:10] < first[r["mql_id"]]]
    db = f"sqlite:///{tmp_path / 'ws.db'}"
    (tmp_path / "mql.yaml").write_text(
        "columns: {external_id: mql_id, title: mql_id, created: first_contact_date, source: origin}\n"
        "stage: MQL\npipeline: Olist sellers\ncurrency: BRL\n"
    )
    (tmp_path / "won.yaml").write_text(
        "columns: {deal: mql_id, at: won_date, by: sr_id}\nstage: Won\npipeline: Olist sellers\n"
    )
    run(
        db,
        "pipeline",
        "create",
        "Olist sellers",
        "--stages",
        "MQL",
        "--won",
        "Won",
        "--lost",
        "Lost",
        "--reason-optional",
    )
    run(db, "import", "deals", str(mql), "--mapping", str(tmp_path / "mql.yaml"))
    refused = runner.invoke(app, ["--db", db, "import", "moves", str(won), "--mapping", str(tmp_path / "won.yaml")])
    assert refused.exit_code == 1, refused.exception
    assert "earlier than the deal's last logged move" in refused.output, (refused.output, refused.exception)
    out = run(db, "import", "moves", str(won), "--mapping", str(tmp_path / "won.yaml"), "--skip-bad-rows")
    assert f"read {len(closed)}" in out and f"rejected {len(backwards)}" in out
    o = funnel(db, "Olist sellers")["overall"]
    assert (o["entered"], o["won"]) == (len(leads), len(closed) - len(backwards))
    import json

    by_source = json.loads(run(db, "funnel", "Olist sellers", "--by", "source", "--format", "json"))
    assert {g["group"]: g["overall"]["entered"] for g in by_source["groups"]} == Counter(
        r["origin"] or "(none)" for r in leads
    )


def test_uci_bank_marketing(tmp_path: Path) -> None:
    raw = need("uci_bank_marketing", "bank-additional-full.csv")
    rows = read_csv(raw, ";")
    db = f"sqlite:///{tmp_path / 'ws.db'}"
    (tmp_path / "bank.yaml").write_text(
        "columns: {stage: y, source: contact, segment: job}\n"
        'values: {stage: {"yes": Subscribed, "no": Not subscribed}}\n'
        "title: Client call\npipeline: Bank telemarketing\ncurrency: EUR\n"
    )
    run(
        db,
        "pipeline",
        "create",
        "Bank telemarketing",
        "--stages",
        "Contacted",
        "--won",
        "Subscribed",
        "--lost",
        "Not subscribed",
        "--reason-optional",
    )
    out = run(db, "import", "deals", str(raw), "--mapping", str(tmp_path / "bank.yaml"))
    assert f"read {len(rows)}, inserted {len(rows)}" in out
    o = funnel(db, "Bank telemarketing")["overall"]
    yes = sum(r["y"] == "yes" for r in rows)
    assert (o["entered"], o["won"], o["lost"]) == (len(rows), yes, len(rows) - yes)
    again = run(db, "import", "deals", str(raw), "--mapping", str(tmp_path / "bank.yaml"))
    assert f"unchanged {len(rows)}" in again


def test_rees46_events(tmp_path: Path) -> None:
    raw = need("rees46_multicategory_sample", "2019-Oct_first17434rows.csv")
    with raw.open(encoding="utf-8") as fh:
        n = sum(1 for _ in csv.reader(fh)) - 1
    db = f"sqlite:///{tmp_path / 'ws.db'}"
    out = run(db, "import", "events", str(raw), "--entity", "user_id", "--source", "rees46")
    assert f"read {n}, inserted {n}" in out
    assert f"inserted 0, updated 0, unchanged {n}" in run(
        db, "import", "events", str(raw), "--entity", "user_id", "--source", "rees46"
    )
