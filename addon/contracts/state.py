"""The billing engine's memory across runs, kept in the database.

Each issued invoice stores the engine's `Document` (allocations, fee periods, extras, visits,
exclusions) per contract as JSON in `invoice.billing_documents`, written in the issuing
transaction. Every run rebuilds `BillingState` per customer and contract from those rows; an
invoice with state "cancelled" becomes a document with `cancelled_by`, which releases what it
billed (entries, fees) so the engine bills it again. The contingent ledger is a derived table:
rewritten from the engine's `ContingentSnapshot`s whenever a retainer is rated.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from babel.dates import format_date
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from addon import billing
from addon.billing.periods import shift_period
from addon.models import ContingentLedger, Contract, Invoice
from addon.plain import plain

DEFAULT_CONTRACT = "default"  # key of the implicit T&M contract of a customer without contracts


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value))


def _line(data: dict[str, Any]) -> billing.Line:
    return billing.Line(
        kind=data["kind"], ticket=data["ticket"], activity=data["activity"], label=data["label"],
        quantity=_decimal(data["quantity"]), unit=data["unit"], unit_price=_decimal(data["unit_price"]),
        net=_decimal(data["net"]), vat_rate=_decimal(data["vat_rate"]), service_period=data["service_period"],
        service_start=date.fromisoformat(data["service_start"]),
        service_end=date.fromisoformat(data["service_end"]),
        entries=tuple(billing.EntryRef(**e) for e in data["entries"]), agents=tuple(data["agents"]),
        correction=data["correction"], explanation=data["explanation"],
    )


def _totals(data: dict[str, Any]) -> billing.Totals:
    return billing.Totals(
        _decimal(data["net"]), _decimal(data["vat"]), _decimal(data["gross"]),
        tuple(billing.VatBreakdown(_decimal(b["rate"]), _decimal(b["base"]), _decimal(b["vat"]))
              for b in data["by_rate"]))


def document_to_json(document: billing.Document) -> dict[str, Any]:
    """A JSON-safe dict (decimals and dates as strings) of an engine document."""
    return json.loads(json.dumps(plain(document), default=str))


def document_from_json(data: dict[str, Any]) -> billing.Document:
    """The engine document back from `document_to_json`."""
    return billing.Document(
        document_id=data["document_id"], kind=data["kind"], period=data["period"],
        lines=tuple(_line(x) for x in data["lines"]), totals=_totals(data["totals"]),
        allocations=tuple(billing.Allocation(**{**a, "unit_price": _decimal(a["unit_price"])})
                          for a in data["allocations"]),
        fee_periods=tuple(data["fee_periods"]), extra_ids=tuple(data["extra_ids"]),
        visits=tuple(data["visits"]), excluded=tuple(billing.Exclusion(**x) for x in data["excluded"]),
        cancels=data["cancels"], cancelled_by=data["cancelled_by"],
    )


def encode_documents(documents: dict[str, billing.Document]) -> str:
    """The `invoice.billing_documents` text: {contract key: document}."""
    return json.dumps({k: document_to_json(d) for k, d in sorted(documents.items())}, sort_keys=True)


def customer_states(session: Session, customer_id: int) -> dict[str, billing.BillingState]:
    """BillingState per contract key from the customer's issued invoices, oldest first."""
    rows = session.execute(
        select(Invoice).where(Invoice.customer_id == customer_id, Invoice.billing_documents.is_not(None))
        .order_by(Invoice.id)
    ).scalars().all()
    documents: dict[str, list[billing.Document]] = {}
    for invoice in rows:
        for key, data in json.loads(invoice.billing_documents or "{}").items():
            document = document_from_json(data)
            if invoice.state == "cancelled" and document.cancelled_by is None:
                document = replace(document, cancelled_by=f"storno:{invoice.number}")
            documents.setdefault(key, []).append(document)
    return {key: billing.BillingState(tuple(docs)) for key, docs in documents.items()}


def settled_keys(states: dict[str, billing.BillingState]) -> dict[str, str]:
    """Entry id → the contract key whose valid documents bill or settle it.

    Billed (an allocation, even one corrected to zero), excluded on a valid invoice (internal,
    netted to zero) or netted into a billed entry as a correction: from then on the entry
    belongs to that contract's memory. If (from before issue 11) two keys hold one entry, the
    first document's key wins.
    """
    found: dict[str, tuple[str, int]] = {}
    for key, state in states.items():
        for position, document in enumerate(state.valid_invoices()):
            order = int(document.document_id) if document.document_id.isdigit() else position
            ids = {a.entry_id for a in document.allocations} | {x.entry_id for x in document.excluded}
            ids |= {str(c) for line in document.lines
                    for c in line.explanation.get("corrections_netted", ())}  # type: ignore[attr-defined]
            for entry_id in ids:
                if entry_id not in found or order < found[entry_id][1]:
                    found[entry_id] = (key, order)
    return {entry_id: key for entry_id, (key, _order) in found.items()}


def legacy_billed_entries(session: Session, customer_id: int) -> set[int]:
    """Entries on valid invoices issued before the engine's memory was stored (no documents):
    kept out of the engine's input, so they can never be billed again."""
    from addon.models import BilledEntry

    return set(session.execute(
        select(BilledEntry.entry_id).join(Invoice, Invoice.id == BilledEntry.invoice_id)
        .where(Invoice.customer_id == customer_id, Invoice.billing_documents.is_(None),
               Invoice.state != "cancelled")
    ).scalars())


def record_ledger(session: Session, contract: Contract, retainer: billing.Retainer,
                  snapshots: tuple[billing.ContingentSnapshot, ...], now: datetime) -> None:
    """Rewrite the contract's ledger rows for the periods in `snapshots`.

    Per bucket: granted (its minutes at the start of the period), consumed, rolled over (unused
    allowance carried into later periods) and expired (what lapses at the end of this period).
    """
    blocks_until = {f"block:{b.id}": b.valid_until for b in retainer.prepaid_blocks}
    for snap in snapshots:
        session.execute(delete(ContingentLedger).where(
            ContingentLedger.contract_id == contract.id, ContingentLedger.period == snap.period))
        for bucket in sorted(set(snap.consumed) | set(snap.remaining)):
            consumed, remaining = snap.consumed.get(bucket, 0), snap.remaining.get(bucket, 0)
            rolled = snap.rollover_out if bucket == "allowance" else 0
            if bucket == "allowance":
                expired = remaining - rolled
            elif bucket.startswith("rollover:"):
                last = shift_period(bucket.split(":", 1)[1], retainer.rollover.periods) if retainer.rollover else ""
                expired = remaining if last == snap.period else 0
            else:
                until = blocks_until.get(bucket)
                expired = remaining if until is not None and f"{until:%Y-%m}" == snap.period else 0
            session.add(ContingentLedger(
                contract_id=contract.id, period=snap.period, bucket=bucket, granted=consumed + remaining,
                consumed=consumed, rolled_over=rolled, expired=expired,
                overage=snap.overage if bucket == "allowance" else 0, updated_at=now))
    session.flush()


def hours(minutes: int) -> str:
    """465 → '7:45' (hours:minutes, as a team lead reads it)."""
    sign = "-" if minutes < 0 else ""
    return f"{sign}{abs(minutes) // 60}:{abs(minutes) % 60:02d}"


def month_name(period: str, language: str) -> str:
    """"2026-11" → "November 2026" in the language (a reader never decodes ISO months)."""
    return format_date(date.fromisoformat(f"{period}-01"), "LLLL yyyy", locale="de_DE" if language == "de" else "en_GB")


def open_share(snap: billing.ContingentSnapshot, with_open: billing.ContingentSnapshot | None) -> tuple[int, int]:
    """(minutes used including open work, of them on open tickets) of one period.

    `snap` is what closed tickets use (what invoices bill); `with_open` the same period rated
    with the work of open tickets too. The difference is the open tickets' share.
    """
    used = sum(snap.consumed.values())
    if with_open is None:
        return used, 0
    total = sum(with_open.consumed.values())
    return max(total, used), max(total - used, 0)


def ledger_summary(snap: billing.ContingentSnapshot, retainer: billing.Retainer, language: str = "en",
                   with_open: billing.ContingentSnapshot | None = None) -> str:
    """"Kontingent November 2026: 7:45 h von 10:00 h verbraucht" for one period, with
    rollover/blocks/overage, and the share of open tickets when they use the contingent too
    ("2:45 h of it on open tickets"); the covered bookings themselves are in the activity report."""
    shown = with_open or snap  # open work may shrink what rolls over from earlier months
    granted = sum(shown.consumed.values()) + sum(shown.remaining.values())
    used, on_open = open_share(snap, with_open)
    month = month_name(snap.period, language)
    if language == "de":
        text = f"Kontingent {month}: {hours(used)} h von {hours(granted)} h verbraucht"
        if granted != retainer.included_minutes:
            text += f" (davon {hours(retainer.included_minutes)} h monatlich inklusive)"
        if on_open:
            text += f", davon {hours(on_open)} h auf offenen Tickets (berechnet mit ihrem Abschluss)"
        if snap.overage:
            text += f"; {hours(snap.overage)} h darüber hinaus berechnet"
        return text + "."
    text = f"Contingent {month}: {hours(used)} h of {hours(granted)} h used"
    if granted != retainer.included_minutes:
        text += f" ({hours(retainer.included_minutes)} h included per month)"
    if on_open:
        text += f", {hours(on_open)} h of it on open tickets (billed when they are closed)"
    if snap.overage:
        text += f"; {hours(snap.overage)} h overage billed"
    return text + "."
