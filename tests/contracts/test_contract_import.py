"""Contract import: a valid file is stored whole and round-trips through export; any bad key
refuses the whole file, naming the entry and key; the README example imports."""

from __future__ import annotations

import copy
import json
import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from addon.contracts import ContractImportError, export_document, import_contracts, import_document
from addon.db import make_session_factory, transaction
from addon.models import AgentRole, Contract, Customer, RateRuleRow

README = Path(__file__).resolve().parents[2] / "README.md"

FLAT: dict[str, Any] = {
    "code": "HANSEN-FLAT", "customer": "1", "kind": "retainer", "trigger": "monthly",
    "valid_from": "2026-01-01", "timezone": "Europe/Berlin", "holiday_region": "DE-HH",
    "rounding": {"scope": "entry", "mode": "up", "increment": 15, "minimum": 15,
                 "minimum_by_activity": {"Vor-Ort": 30}},
    "surcharges": [{"name": "Nacht", "kind": "night", "from": "20:00", "to": "06:00", "percent": "25"},
                   {"name": "Feiertag", "kind": "holiday", "percent": "100"}],
    "rates": [{"activity": "Remote", "rate": "95.00"}, {"role": "senior", "rate": "120.00"}],
    "retainer": {"start_period": "2026-01", "fee": "950.00", "fee_label": "Service-Flat",
                 "included_minutes": 600, "covered_activities": ["Remote"], "overage_rate": "115.00",
                 "rollover": {"max_minutes": 120, "periods": 1},
                 "prepaid_blocks": [{"id": "B1", "minutes": 600, "valid_until": "2026-12-31", "price": "900.00"}]},
    "travel": {"flat_per_visit": "35.00", "activities": ["Vor-Ort"]},
    "material_markup": {"hardware": "0.15"},
    "assign": {"groups": ["Users"], "tags": ["vip"], "tickets": ["31001"]},
}
DOCUMENT: dict[str, Any] = {
    "activities": ["Remote", "Vor-Ort"],
    "agents": [{"id": "anna@example.com", "role": "senior"}],
    "rates": [{"scope": "global", "activity": "Notfall", "rate": "150.00"},
              {"scope": "customer", "customer": "2", "role": "senior", "rate": "125.00"}],
    "contracts": [FLAT, {"code": "MUELLER-TM", "customer": "2", "rates": [{"rate": "110.00"}]}],
}


@pytest.fixture
def factory(engine: Engine):  # type: ignore[no-untyped-def]
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        for remote_id in ("1", "2"):
            session.add(Customer(helpdesk="zammad", remote_id=remote_id, name=f"Kunde {remote_id}"))
    return factory


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "contracts.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def counts(factory) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    with factory() as session:
        return tuple(session.execute(select(func.count()).select_from(m)).scalar_one()  # type: ignore[return-value]
                     for m in (Contract, RateRuleRow, AgentRole))


def test_import_stores_everything_and_export_round_trips(factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with transaction(factory) as session:
        result = import_contracts(session, "zammad", write(tmp_path, DOCUMENT))
    assert (result.created, result.updated, result.agents, result.rates) == (2, 0, 1, 2)
    with factory() as session:
        flat = session.execute(select(Contract).where(Contract.code == "HANSEN-FLAT")).scalar_one()
        assert (flat.kind, flat.trigger, flat.fee, flat.included_minutes) == ("retainer", "monthly",
                                                                             Decimal("950.00"), 600)
        assert flat.valid_from == date(2026, 1, 1) and flat.valid_until is None
        assert [(s.kind, s.start, s.end) for s in flat.surcharges] == [("night", "20:00", "06:00"),
                                                                     ("holiday", None, None)]
        assert [(b.code, b.minutes) for b in flat.prepaid_blocks] == [("B1", 600)]
        assert sorted((a.kind, a.value) for a in flat.assignments) == [
            ("group", "Users"), ("tag", "vip"), ("ticket", "31001")]
        exported = export_document(session)
    assert exported["agents"] == DOCUMENT["agents"]
    assert exported["rates"] == DOCUMENT["rates"]
    assert exported["contracts"][0]["retainer"]["prepaid_blocks"] == FLAT["retainer"]["prepaid_blocks"]
    assert exported["contracts"][0]["surcharges"] == FLAT["surcharges"]
    # importing the export again changes nothing (same rows, updated in place)
    before = counts(factory)
    with transaction(factory) as session:
        again = import_document(session, "zammad", exported)
        assert export_document(session) == exported
    assert (again.created, again.updated) == (0, 2)
    assert counts(factory) == before


def test_reimport_replaces_a_contract_whole(factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with transaction(factory) as session:
        import_document(session, "zammad", DOCUMENT)
    changed = {**FLAT, "surcharges": [], "rates": [{"rate": "99.00"}], "assign": {}}
    with transaction(factory) as session:
        import_document(session, "zammad", {"contracts": [changed]})
    with factory() as session:
        flat = session.execute(select(Contract).where(Contract.code == "HANSEN-FLAT")).scalar_one()
        assert flat.surcharges == [] and flat.assignments == []
        rates = session.execute(select(RateRuleRow.rate).where(RateRuleRow.contract_id == flat.id)).scalars().all()
        assert rates == [Decimal("99.00")]
        # shared rates are untouched when the file has no "rates"
        assert session.execute(select(func.count()).where(RateRuleRow.scope != "contract")).scalar_one() == 2


def _broken(path: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(DOCUMENT)
    target: Any = document
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    last = keys[-1]
    if value is KeyError:
        del target[last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return document


@pytest.mark.parametrize(("path", "value", "message"), [
    ("contracts.0.colour", "red", "contracts[0] (HANSEN-FLAT): unknown key(s) colour"),
    ("contracts.0.customer", "99", "contracts[0] (HANSEN-FLAT).customer: no customer with helpdesk id '99'"),
    ("contracts.0.kind", "flat", "contracts[0] (HANSEN-FLAT).kind: 'flat' is not one of"),
    ("contracts.0.rates.0.rate", 95.5, "contracts[0] (HANSEN-FLAT).rates[0].rate: 95.5 is not an amount"),
    ("contracts.0.rates.1.agent", "anna@example.com", "rates[1]: a rate names an agent or a role, not both"),
    ("contracts.0.retainer.fee", KeyError, "contracts[0] (HANSEN-FLAT).retainer.fee: missing"),
    ("contracts.0.retainer.start_period", "2026-13", "retainer.start_period: '2026-13' is not a period"),
    ("contracts.0.surcharges.0.from", "25:00", "surcharges[0].from: '25:00' is not a time HH:MM"),
    ("contracts.0.holiday_region", "XX-YY", "holiday_region: 'XX-YY' is not a region"),
    ("contracts.0.timezone", "Mars/Olympus", "timezone: unknown time zone 'Mars/Olympus'"),
    ("contracts.0.trigger", "per_ticket", "trigger: a retainer is billed per period; use monthly"),
    ("contracts.0.valid_until", "2025-01-01", "valid_until: before valid_from"),
    ("contracts.0.assign.queues", ["x"], "assign: unknown key(s) queues"),
    ("contracts.0.rounding.mode", "banker", "rounding.mode: 'banker' is not one of up, down, nearest"),
    ("contracts.1.retainer", {"fee": "1.00"}, "(MUELLER-TM).retainer: only contracts of kind retainer"),
    ("contracts.1.code", "HANSEN-FLAT", "contracts: duplicate code(s) ['HANSEN-FLAT']"),
    ("rates.1.customer", KeyError, "rates[1].customer: missing"),
    ("agents.0.id", "", "agents[0].id: missing"),
])
def test_bad_input_names_the_key_and_writes_nothing(factory, tmp_path: Path, path: str, value: Any,  # type: ignore[no-untyped-def]
                                                    message: str) -> None:
    with pytest.raises(ContractImportError) as excinfo, transaction(factory) as session:
        import_contracts(session, "zammad", write(tmp_path, _broken(path, value)))
    assert message in str(excinfo.value)
    assert counts(factory) == (0, 0, 0)


def test_cli_import_list_show(engine: Engine, database_url: str, tmp_path: Path,  # type: ignore[no-untyped-def]
                              monkeypatch: pytest.MonkeyPatch) -> None:
    from addon.cli import main

    factory = make_session_factory(engine)
    with transaction(factory) as session:
        session.add(Customer(helpdesk="zammad", remote_id="1", name="Bäckerei Hansen GmbH"))
        session.add(Customer(helpdesk="zammad", remote_id="2", name="Müller"))
    env = tmp_path / "test.env"
    env.write_text(f"DATABASE_URL={database_url}\nDATA_DIR={tmp_path / 'data'}\nHELPDESK_KIND=zammad\n"
                   "HELPDESK_URL=http://127.0.0.1:9\nHELPDESK_TOKEN=x\nSELLER_NAME=Nordlicht IT\n"
                   "SELLER_STREET=Hafenstraße 12\nSELLER_POSTCODE=20457\nSELLER_CITY=Hamburg\n"
                   "SELLER_VAT_ID=DE136695976\nSELLER_IBAN=DE89370400440532013000\n", encoding="utf-8")
    runner = CliRunner()
    bad = runner.invoke(main, ["--env-file", str(env), "contracts", "import",
                               str(write(tmp_path, _broken("contracts.0.colour", "red")))])
    assert bad.exit_code == 2 and "nothing written" in bad.output and "colour" in bad.output
    ok = runner.invoke(main, ["--env-file", str(env), "contracts", "import", str(write(tmp_path, DOCUMENT))])
    assert ok.exit_code == 0, ok.output
    assert "contracts created: 2" in ok.output
    listed = runner.invoke(main, ["--env-file", str(env), "contracts", "list"])
    assert "HANSEN-FLAT" in listed.output and "retainer" in listed.output and "group Users" in listed.output
    shown = runner.invoke(main, ["--env-file", str(env), "contracts", "show", "MUELLER-TM"])
    assert json.loads(shown.output)["rates"] == [{"rate": "110.00"}]
    missing = runner.invoke(main, ["--env-file", str(env), "contracts", "show", "NOPE"])
    assert missing.exit_code == 1
    bad_period = runner.invoke(main, ["--env-file", str(env), "invoice-period", "--period", "2026-13"])
    assert bad_period.exit_code == 2 and "not a month YYYY-MM" in bad_period.output
    period = runner.invoke(main, ["--env-file", str(env), "invoice-period", "--period", "2026-10"])
    assert period.exit_code == 0, period.output
    assert "needs_attention" in period.output and "no billing address" in period.output
    contingents = runner.invoke(main, ["--env-file", str(env), "contingents", "--period", "2026-03"])
    assert contingents.exit_code == 0, contingents.output
    assert "HANSEN-FLAT (Bäckerei Hansen GmbH): 0:00 h of 22:00 h used in 2026-03" in contingents.output


def readme_example() -> dict[str, Any]:
    """The contracts JSON in README's "How billing works" section."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## How billing works"):]
    block = re.search(r"```json\n(.*?)```", section, re.S)
    assert block is not None, "README's billing section has no ```json example"
    return json.loads(block.group(1))


def test_readme_example_imports(engine: Engine) -> None:
    example = readme_example()
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        for remote_id in sorted({c["customer"] for c in example["contracts"]}
                                | {r["customer"] for r in example.get("rates", []) if "customer" in r}):
            session.add(Customer(helpdesk="zammad", remote_id=remote_id, name=f"Kunde {remote_id}"))
    with transaction(factory) as session:
        result = import_document(session, "zammad", example)
    assert result.created == len(example["contracts"])
