"""The engine's memory in the database: documents round-trip through JSON exactly, cancelled
invoices release what they billed, the ledger rows say granted/consumed/rolled over/expired."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import Engine, select

from addon import billing
from addon.contracts import import_document
from addon.contracts.engine import claims, customer_contracts, route, ticket_info
from addon.contracts.state import (
    customer_states,
    document_from_json,
    document_to_json,
    encode_documents,
    hours,
    ledger_summary,
    record_ledger,
)
from addon.db import make_session_factory, transaction
from addon.models import ContingentLedger, Contract, Customer, Invoice, Ticket
from addon.settings import load_settings

RETAINER = billing.Retainer(
    start_period="2026-01", fee=Decimal("950.00"), fee_label="Service-Flat", included_minutes=60,
    overage_rate=Decimal("115.00"), rollover=billing.Rollover(max_minutes=30, periods=1),
    prepaid_blocks=(billing.PrepaidBlock("B1", 30, date(2026, 2, 28)),),
)
CONTRACT = billing.Contract(
    id="flat", rounding=billing.Rounding(increment=15), rates=(billing.RateRule(Decimal("100.00")),),
    surcharges=(billing.Surcharge("Sonntag", "sunday", Decimal("50")),), retainer=RETAINER,
)


def entry(entry_id: str, day: int, minutes: int, month: int = 1) -> billing.TimeEntry:
    start = datetime(2026, month, day, 9, 0, tzinfo=UTC)
    return billing.TimeEntry(entry_id, "T1", "anna", "Remote", start=start, minutes=minutes)


def january() -> billing.BillingResult:
    # 40 min on a Sunday (4 Jan, covered: surcharge share only) + 50 min on a Monday → 90 of
    # 60 + 30 (block) minutes, nothing over
    entries = (entry("1", 4, 40), entry("2", 5, 50))
    return billing.bill(billing.BillingRequest(CONTRACT, {"anna": billing.Agent("anna")}, entries,
                                               period="2026-01", document_id="7"))


def test_document_round_trips_through_json() -> None:
    document = january().state.documents[-1]
    assert document.allocations and document.fee_periods == ("2026-01",)
    assert document_from_json(document_to_json(document)) == document


def test_a_new_run_after_the_stored_state_bills_nothing_twice() -> None:
    result = january()
    restored = billing.BillingState(tuple(document_from_json(document_to_json(d)) for d in result.state.documents))
    again = billing.bill(billing.BillingRequest(CONTRACT, {"anna": billing.Agent("anna")},
                                                (entry("1", 4, 40), entry("2", 5, 50)), period="2026-01",
                                                state=restored))
    assert again.lines == ()


def test_states_per_contract_and_cancelled_invoices(engine: Engine) -> None:
    factory = make_session_factory(engine)
    document = january().state.documents[-1]
    with transaction(factory) as session:
        customer = Customer(helpdesk="zammad", remote_id="1", name="Hansen")
        session.add(customer)
        session.flush()
        for number, state in (("RE-1", "cancelled"), ("RE-2", "issued")):
            session.add(Invoice(series="invoice", number=number, state=state, customer_id=customer.id,
                                issued_at=datetime(2026, 2, 1, tzinfo=UTC), net=Decimal(1), vat=Decimal(0),
                                gross=Decimal(1), snapshot="{}", access_key=number,
                                billing_documents=encode_documents({"flat": document})))
    with factory() as session:
        states = customer_states(session, customer.id)
    assert list(states) == ["flat"]
    first, second = states["flat"].documents
    assert first.cancelled_by == "storno:RE-1" and not first.valid
    assert second.valid
    assert states["flat"].valid_invoices() == (second,)


def test_ledger_rows_and_summary(engine: Engine) -> None:
    factory = make_session_factory(engine)
    entries = (entry("1", 5, 30), entry("2", 3, 90, month=2))
    result = billing.bill(billing.BillingRequest(CONTRACT, {"anna": billing.Agent("anna")}, entries,
                                                 period="2026-02"))
    jan, feb = result.contingents
    with transaction(factory) as session:
        customer = Customer(helpdesk="zammad", remote_id="1", name="Hansen")
        session.add(customer)
        session.flush()
        row = Contract(code="FLAT", customer_id=customer.id, kind="retainer", trigger="monthly")
        session.add(row)
        session.flush()
        record_ledger(session, row, RETAINER, result.contingents, datetime(2026, 3, 1, tzinfo=UTC))
    with factory() as session:
        rows = session.execute(select(ContingentLedger).order_by(ContingentLedger.period,
                                                                 ContingentLedger.bucket)).scalars().all()
        table = [(r.period, r.bucket, r.granted, r.consumed, r.rolled_over, r.expired, r.overage) for r in rows]
    # January: the allowance (expires end of January) drains before the block (end of February):
    # 30 of 60 used, 30 roll over. February: rollover and block expire with the month and drain
    # first; 30 min of the allowance are left and roll over into March.
    assert table == [
        ("2026-01", "allowance", 60, 30, 30, 0, 0),
        ("2026-01", "block:B1", 30, 0, 0, 0, 0),
        ("2026-02", "allowance", 60, 30, 30, 0, 0),
        ("2026-02", "block:B1", 30, 30, 0, 0, 0),
        ("2026-02", "rollover:2026-01", 30, 30, 0, 0, 0),
    ]
    assert ledger_summary(feb, RETAINER, "en") == (
        "Contingent February 2026: 1:30 h of 2:00 h used (1:00 h included per month).")
    assert ledger_summary(jan, RETAINER, "de") == (
        "Kontingent Januar 2026: 0:30 h von 1:30 h verbraucht (davon 1:00 h monatlich inklusive).")
    assert (hours(465), hours(600), hours(-15)) == ("7:45", "10:00", "-0:15")


def test_customer_contracts_and_routing_from_the_database(engine: Engine) -> None:
    factory = make_session_factory(engine)
    settings = load_settings({"HELPDESK_KIND": "zammad", "HELPDESK_URL": "http://127.0.0.1:9",
                              "HELPDESK_TOKEN": "x", "SELLER_NAME": "N", "SELLER_STREET": "S 1",
                              "SELLER_POSTCODE": "20457", "SELLER_CITY": "Hamburg",
                              "SELLER_VAT_ID": "DE136695976", "SELLER_IBAN": "DE89370400440532013000"})
    with transaction(factory) as session:
        session.add(Customer(helpdesk="zammad", remote_id="1", name="Hansen", hourly_rate=Decimal("89.00")))
        session.flush()
        import_document(session, "zammad", {"contracts": [
            {"code": "ALL", "customer": "1", "valid_until": "2026-06-30"},
            {"code": "PROJ", "customer": "1", "assign": {"groups": ["Projekte"]}},
        ]})
    with factory() as session:
        customer = session.execute(select(Customer)).scalar_one()
        setups = customer_contracts(session, settings, customer)
        assert [s.key for s in setups] == ["ALL", "PROJ"]
        assert setups[0].engine.rates == (billing.RateRule(Decimal("89.00"), "customer"),)
        specific, fallback = claims(setups)
        assert [c.contract_id for c in specific] == ["PROJ"] and [c.contract_id for c in fallback] == ["ALL"]
    tickets = {n: ticket_info(Ticket(number=n, group=g, tags=[])) for n, g in (("1", "Projekte"), ("2", "Users"))}
    entries = [billing.TimeEntry("a", "1", "anna", "Remote", start=datetime(2026, 5, 4, 9, tzinfo=UTC), minutes=30),
               billing.TimeEntry("b", "2", "anna", "Remote", start=datetime(2026, 5, 4, 9, tzinfo=UTC), minutes=30),
               billing.TimeEntry("c", "2", "anna", "Remote", start=datetime(2026, 7, 1, 9, tzinfo=UTC), minutes=30)]
    routing = route(entries, tickets, setups, "Europe/Berlin")
    assert {k: [e.id for e in v] for k, v in routing.by_contract.items()} == {"ALL": ["b"], "PROJ": ["a"]}
    assert [x.entry_id for x in routing.held] == ["c"]
    assert "no contract claims ticket 2 on 2026-07-01" in routing.problems[0].reason


def test_readme_contract_maps_onto_the_engine(engine: Engine) -> None:
    from test_contract_import import readme_example

    factory = make_session_factory(engine)
    settings = load_settings({"HELPDESK_KIND": "zammad", "HELPDESK_URL": "http://127.0.0.1:9",
                              "HELPDESK_TOKEN": "x", "SELLER_NAME": "N", "SELLER_STREET": "S 1",
                              "SELLER_POSTCODE": "20457", "SELLER_CITY": "Hamburg",
                              "SELLER_VAT_ID": "DE136695976", "SELLER_IBAN": "DE89370400440532013000"})
    with transaction(factory) as session:
        for remote_id in ("1", "2"):
            session.add(Customer(helpdesk="zammad", remote_id=remote_id, name=f"Kunde {remote_id}"))
        session.flush()
        import_document(session, "zammad", readme_example())
    with factory() as session:
        customer = session.execute(select(Customer).where(Customer.remote_id == "1")).scalar_one()
        [setup] = customer_contracts(session, settings, customer)
    contract = setup.engine
    assert (setup.key, setup.trigger) == ("HANSEN-FLAT", "monthly")
    assert contract.rounding == billing.Rounding("entry", "up", 15, 15, {"Vor-Ort": 30})
    assert [(s.kind, s.percent, s.start, s.end) for s in contract.surcharges] == [
        ("night", Decimal("25"), datetime(2000, 1, 1, 20).time(), datetime(2000, 1, 1, 6).time()),
        ("saturday", Decimal("25"), None, None), ("sunday", Decimal("50"), None, None),
        ("holiday", Decimal("100"), None, None)]
    assert contract.holiday_region == "DE-HH" and contract.surcharge_policy == "highest"
    assert contract.retainer == billing.Retainer(
        start_period="2026-01", fee=Decimal("950.00"), fee_label="Service-Flat (10 h inklusive)",
        included_minutes=600, covered_activities=frozenset({"Remote", "Notfall"}),
        overage_rate=Decimal("115.00"), rollover=billing.Rollover(120, 1),
        prepaid_blocks=(billing.PrepaidBlock("B-2026-1", 600, date(2026, 12, 31), Decimal("900.00")),))
    assert contract.travel == billing.TravelFlat(Decimal("35.00"), frozenset({"Vor-Ort"}))
    assert contract.material_markup == {"hardware": Decimal("0.15")}
    assert contract.known_activities == frozenset({"Remote", "Vor-Ort", "Notfall", "Fahrt", "Arbeitszeit"})
    # contract table first, then the shared tables (customer 1 has none), global last
    assert [(r.scope, r.activity, r.role, r.rate) for r in contract.rates] == [
        ("contract", "Remote", None, Decimal("95.00")), ("contract", "Vor-Ort", None, Decimal("120.00")),
        ("contract", "Vor-Ort", "senior", Decimal("135.00")), ("global", None, None, Decimal("95.00")),
        ("global", "Notfall", None, Decimal("150.00"))]
