"""`ticketbill verify`: check a live installation's money invariants and say what is wrong.

An auditor (or a test, or a crash harness) asks one question: does the database still tell a
consistent story? This module answers it from the stored rows alone, without the helpdesk and
without changing anything:

- **billing**: every booked minute is on exactly one valid (issued, uncancelled) invoice, on an
  open draft, or has a visible reason (the entry's own reason, the ticket's status with its
  reason, or an open review item of the ticket); no entry is billed under two contracts; no
  entry is still linked to a cancelled invoice; the billing history nets to what the links say.
- **numbers**: the numbers of each series are unique and gapless per counter (series and year).
- **documents**: every stored PDF/XML still has the SHA-256 recorded on its invoice row.
- **notes**: every issued document queued one write-back per ticket it names; no ticket got
  the same status note twice; no write-back failed for good. Write-backs still being retried
  are reported as notices, not findings: the outbox never gives up on them.

`verify(factory, settings)` returns a `VerifyReport`; the CLI prints it and exits 1 when a
finding exists. The interface is stable: tests and the reliability harnesses call it.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import click
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from addon.contracts.state import customer_states
from addon.models import (
    BilledEntry,
    BillingHistory,
    Contract,
    Customer,
    Invoice,
    NumberSeries,
    Outbox,
    ReviewItem,
    Ticket,
    TimeEntry,
)
from addon.settings import Settings

#: invoice states whose lines count as billed; a draft reserves its entries
VALID_STATES = ("issued", "sent", "paid")
WRITE_BACK = "ticket_writeback"  # the outbox kind of ticket write-backs (addon.sync.writeback)
#: ticket statuses whose attention reason explains why the ticket's time is not (yet) invoiced
EXPLAINING_STATUSES = ("unbilled", "billable", "covered", "not_billable", "needs_attention", "draft", "cancelled")


@dataclass(frozen=True)
class Finding:
    """One thing that is wrong: which check found it, about what, and what exactly."""

    check: str  # billing | numbers | documents | notes
    subject: str  # "entry 12 (ticket #31042)", "RE-2026-00029", "series invoice 2026"
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.subject}: {self.message}"


@dataclass(frozen=True)
class VerifyReport:
    """All findings of one verification, and how many records each check looked at."""

    findings: tuple[Finding, ...]
    checked: Mapping[str, int] = field(default_factory=dict)
    #: what is still under way and not wrong (write-backs being retried): printed, never failing
    notices: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.findings

    def by_check(self, check: str) -> list[Finding]:
        return [f for f in self.findings if f.check == check]

    def lines(self) -> list[str]:
        """What the CLI prints: a summary line, then one line per finding."""
        counted = ", ".join(f"{n} {what}" for what, n in self.checked.items())
        notices = [f"note: {n}" for n in self.notices]
        if self.ok:
            return [f"verify: OK ({counted})", *notices]
        return [f"verify: {len(self.findings)} finding(s) ({counted})", *(str(f) for f in self.findings), *notices]


def _minutes(value: Decimal | int) -> str:
    return format(Decimal(value).normalize(), "f")


def _entry_subject(entry: TimeEntry, tickets: Mapping[int, Ticket]) -> str:
    ticket = tickets.get(entry.ticket_id)
    return f"entry {entry.id} ({entry.helpdesk} {entry.remote_id}, ticket #{ticket.number if ticket else '?'})"


def _allocations(session: Session, customers: Iterable[Customer]) -> dict[str, dict[str, int]]:
    """Net minutes per entry id and contract key over every valid engine document."""
    net: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for customer in customers:
        for key, state in customer_states(session, customer.id).items():
            for document in state.valid_invoices():
                for allocation in document.allocations:
                    net[allocation.entry_id][key] += allocation.minutes
    return net


def _awaiting_monthly_invoice(
    session: Session, invoices: Iterable[Invoice], tickets: Mapping[int, Ticket], timezone: str
) -> Callable[[TimeEntry], bool]:
    """Whether an entry waits for a monthly invoice that is not issued yet: its payer has a
    contract billed monthly and the entry's month (in the contract's time zone) has no valid
    monthly invoice. Such time is explained by the contract itself, even on a ticket whose
    earlier time is invoiced already (a ticket that straddles a month boundary)."""
    zones: dict[int, ZoneInfo] = {}
    for contract in session.execute(select(Contract).where(Contract.trigger == "monthly")).scalars():
        customer = session.get(Customer, contract.customer_id)
        zones[contract.customer_id] = ZoneInfo(contract.timezone or (customer and customer.timezone) or timezone)
    billed_months = {(i.customer_id, i.billing_period) for i in invoices
                     if i.billing_period and i.state in VALID_STATES}

    def awaiting(entry: TimeEntry) -> bool:
        ticket = tickets.get(entry.ticket_id)
        payer = ticket and (ticket.billing_customer_id or ticket.customer_id)
        if payer not in zones:
            return False
        month = entry.booked_at.astimezone(zones[payer]).strftime("%Y-%m")
        return (payer, month) not in billed_months

    return awaiting


def _check_billing(session: Session, timezone: str) -> tuple[list[Finding], int]:
    findings: list[Finding] = []
    tickets = {t.id: t for t in session.execute(select(Ticket)).scalars()}
    invoices = {i.id: i for i in session.execute(select(Invoice)).scalars()}
    awaiting_monthly = _awaiting_monthly_invoice(session, invoices.values(), tickets, timezone)
    links = {b.entry_id: b for b in session.execute(select(BilledEntry)).scalars()}
    history: dict[int, Decimal] = defaultdict(Decimal)
    for row in session.execute(select(BillingHistory)).scalars():
        history[row.entry_id] += row.billed_minutes
    net = _allocations(session, session.execute(select(Customer).order_by(Customer.id)).scalars().all())
    customers = set(session.execute(select(Customer.id)).scalars())
    for ticket in tickets.values():  # a moved ticket's payer has no foreign key (see the model)
        if ticket.billing_customer_id is not None and ticket.billing_customer_id not in customers:
            findings.append(Finding("billing", f"ticket #{ticket.number}",
                                    f"is billed to customer id {ticket.billing_customer_id}, which does not exist"))
    reviewed = set(session.execute(select(ReviewItem.ticket_id).where(ReviewItem.resolved_at.is_(None))).scalars())
    entries = session.execute(select(TimeEntry).order_by(TimeEntry.id)).scalars().all()
    for entry in entries:
        subject = _entry_subject(entry, tickets)
        keys = {key: minutes for key, minutes in net.get(str(entry.id), {}).items() if minutes}
        if len(keys) > 1:
            shares = ", ".join(f"{key}: {minutes} min" for key, minutes in sorted(keys.items()))
            findings.append(Finding("billing", subject, f"billed under more than one contract ({shares})"))
        for key, minutes in keys.items():
            if minutes < 0:
                findings.append(Finding("billing", subject, f"net billed {minutes} min under {key} (below zero)"))
        link = links.get(entry.id)
        invoice = invoices.get(link.invoice_id) if link else None
        if link is not None and invoice is None:
            findings.append(Finding("billing", subject, f"linked to invoice id {link.invoice_id}, which is gone"))
            continue
        if invoice is not None and invoice.state == "cancelled":
            findings.append(Finding("billing", subject, f"still linked to the cancelled invoice {invoice.number}"))
        issued = invoice is not None and invoice.state in VALID_STATES
        expected = link.billed_minutes if issued and link is not None else Decimal(0)
        if history.get(entry.id, Decimal(0)) != expected:
            findings.append(Finding(
                "billing", subject,
                f"billing history nets to {_minutes(history.get(entry.id, Decimal(0)))} min, but "
                + (f"{invoice.number} bills {_minutes(expected)} min" if issued and invoice else
                   "the entry is on no issued invoice")))
        if entry.removed_at is not None or link is not None or any(m > 0 for m in keys.values()):
            continue  # billed (a line, or covered by a contingent under a fee line), or gone
        ticket = tickets.get(entry.ticket_id)
        if entry.not_billed_reason or entry.written_off or awaiting_monthly(entry):
            continue
        if ticket is not None and (ticket.id in reviewed or (
                ticket.billing_status in EXPLAINING_STATUSES and ticket.attention_reason)):
            continue  # the ticket's status says why, or an open review item does
        status = ticket.billing_status if ticket else "no ticket"
        findings.append(Finding(
            "billing", subject,
            f"{_minutes(entry.minutes)} min are on no invoice and no draft, and nothing says why "
            f"(ticket status {status})"))
    return findings, len(entries)


def _number_regex(pattern: str) -> re.Pattern[str]:
    """`RE-{YYYY}-{seq:05}` → a regex with groups `year` and `seq`."""
    out, position = "", 0
    for match in re.finditer(r"\{(YYYY|YY|MM|seq(?::[^}]*)?)\}", pattern):
        out += re.escape(pattern[position:match.start()])
        name = match.group(1)
        out += {"YYYY": r"(?P<year>\d{4})", "YY": r"(?P<yy>\d{2})", "MM": r"\d{2}"}.get(name, r"(?P<seq>\d+)")
        position = match.end()
    return re.compile("^" + out + re.escape(pattern[position:]) + "$")


def _check_numbers(session: Session, settings: Settings) -> tuple[list[Finding], int]:
    """Per counter (series, year): the numbers used are exactly 1 .. next_value − 1, once each.

    A number belongs to the counter whose pattern it matches (an activity report is a document
    of the invoice table numbered from its own counter).
    """
    from addon.invoicing.issue import ACTIVITY_REPORT_SERIES, CANCELLATION_SERIES, SERIES

    findings: list[Finding] = []
    patterns = {SERIES: settings.invoice_number_pattern, CANCELLATION_SERIES: settings.cancellation_number_pattern,
                ACTIVITY_REPORT_SERIES: settings.activity_report_number_pattern}
    numbered = session.execute(select(Invoice).where(Invoice.number.is_not(None)).order_by(Invoice.id)).scalars().all()
    used: dict[tuple[str, int], list[int]] = defaultdict(list)
    for invoice in numbered:
        found = next(((series, pattern, match) for series, pattern in patterns.items()
                      if (match := _number_regex(pattern).match(invoice.number or ""))), None)
        if found is None:
            findings.append(Finding("numbers", str(invoice.number), "matches no number pattern "
                                    f"({', '.join(repr(p) for p in patterns.values())}); not checked"))
            continue
        series, pattern, match = found
        year = 0
        if "{YY" in pattern:
            year = int(match.group("year")) if match.groupdict().get("year") else 2000 + int(match.group("yy"))
        used[(series, year)].append(int(match.group("seq")))
    counters = {(row.name, row.year): row.next_value for row in session.execute(select(NumberSeries)).scalars()}
    for key in sorted(set(used) | set(counters)):
        series, year = key
        label = f"series {series}" + (f" {year}" if year else "")
        seqs = used.get(key, [])
        counts: dict[int, int] = defaultdict(int)
        for seq in seqs:
            counts[seq] += 1
        twice = sorted(seq for seq, n in counts.items() if n > 1)
        if twice:
            findings.append(Finding("numbers", label, f"sequence numbers used twice: {twice}"))
        top = counters.get(key, 1) - 1
        missing = sorted(set(range(1, top + 1)) - set(counts))
        if missing:
            findings.append(Finding("numbers", label, f"gap: sequence numbers {missing} were never issued "
                                                      f"(counter at {top + 1})"))
        beyond = sorted(seq for seq in counts if seq > top)
        if beyond:
            findings.append(Finding("numbers", label, f"sequence numbers {beyond} lie beyond the counter ({top + 1})"))
    return findings, len(numbered)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_documents(session: Session) -> tuple[list[Finding], int]:
    findings: list[Finding] = []
    checked = 0
    issued = session.execute(select(Invoice).where(Invoice.number.is_not(None)).order_by(Invoice.id)).scalars()
    for invoice in issued:
        for kind, path_text, recorded in (("PDF", invoice.pdf_path, invoice.pdf_sha256),
                                          ("XML", invoice.xml_path, invoice.xml_sha256)):
            if not path_text and not recorded:
                continue
            checked += 1
            path = Path(path_text or "")
            if not path_text or not path.is_file():
                findings.append(Finding("documents", str(invoice.number), f"the {kind} {path_text!r} is missing"))
            elif _sha256(path) != recorded:
                findings.append(Finding("documents", str(invoice.number),
                                        f"the {kind} {path} no longer has the SHA-256 recorded at issue"))
        if invoice.snapshot is None:
            findings.append(Finding("documents", str(invoice.number), "issued without a frozen snapshot"))
    return findings, checked


def _outbox_notices(session: Session) -> list[str]:
    """Write-backs still being retried and ones whose ticket is gone: under way, not wrong."""
    notices = []
    rows = session.execute(select(Outbox).where(Outbox.kind == WRITE_BACK, Outbox.status.in_(("pending", "gone")),
                                                Outbox.attempts > 0).order_by(Outbox.id)).scalars()
    tickets = {t.id: t.number for t in session.execute(select(Ticket)).scalars()}
    for row in rows:
        number = tickets.get(row.ticket_id or -1, "?")
        if row.status == "gone":
            notices.append(f"ticket #{number}: write-back {row.marker!r} not written: {row.last_error}")
        else:
            doubt = ", in doubt" if row.in_doubt else ""
            notices.append(f"ticket #{number}: write-back {row.marker!r} retrying ({row.attempts} attempt(s){doubt}"
                           f"): {row.last_error or 'interrupted'}")
    return notices


def _check_notes(session: Session) -> tuple[list[Finding], int]:
    findings: list[Finding] = []
    tickets = {t.id: t for t in session.execute(select(Ticket)).scalars()}
    rows = session.execute(select(Outbox).where(Outbox.kind == WRITE_BACK).order_by(Outbox.id)).scalars().all()
    by_invoice: dict[int, set[int]] = defaultdict(set)
    status_notes: dict[tuple[int, str, str], int] = defaultdict(int)
    for row in rows:
        ticket = tickets.get(row.ticket_id or -1)
        number = ticket.number if ticket else "?"
        if row.status == "failed":
            findings.append(Finding("notes", f"ticket #{number}",
                                    f"write-back {row.marker!r} failed for good: {row.last_error}"))
        if row.invoice_id is not None:
            by_invoice[row.invoice_id].add(row.ticket_id or -1)
        elif row.payload.get("note_html"):
            status, _version, digest = [*row.marker.split(":"), "", ""][:3]
            status_notes[(row.ticket_id or -1, status, digest)] += 1
    for (ticket_id, status, _digest), count in sorted(status_notes.items()):
        if count > 1:
            number = tickets[ticket_id].number if ticket_id in tickets else "?"
            findings.append(Finding("notes", f"ticket #{number}",
                                    f"the same '{status}' note was queued {count} times"))
    issued = session.execute(select(Invoice).where(Invoice.number.is_not(None)).order_by(Invoice.id)).scalars()
    by_number: dict[tuple[str, str], list[Ticket]] = defaultdict(list)
    for ticket in tickets.values():
        by_number[(ticket.helpdesk, ticket.number)].append(ticket)
    for invoice in issued:
        snapshot = json.loads(invoice.snapshot or "{}")
        helpdesk = invoice.customer.helpdesk
        expected = {t.id for ref in snapshot.get("tickets", ()) for t in by_number.get((helpdesk, ref["number"]), ())}
        if invoice.cancels_id is not None:  # a cancellation notes the tickets of the original
            original = session.get(Invoice, invoice.cancels_id)
            original_tickets = json.loads(original.snapshot or "{}").get("tickets", ()) if original else ()
            expected = {t.id for ref in original_tickets for t in by_number.get((helpdesk, ref["number"]), ())}
        for ticket_id in sorted(expected - by_invoice.get(invoice.id, set())):
            findings.append(Finding("notes", str(invoice.number),
                                    f"no write-back (status, reference, note) queued for ticket "
                                    f"#{tickets[ticket_id].number}"))
    return findings, len(rows)


def verify(factory: sessionmaker[Session], settings: Settings) -> VerifyReport:
    """Check every invariant in one read-only session; see the module docstring."""
    findings: list[Finding] = []
    checked: dict[str, int] = {}
    with factory() as session:
        for name, check in (("entries", lambda s: _check_billing(s, settings.timezone)),
                            ("numbers", lambda s: _check_numbers(s, settings)),
                            ("documents", _check_documents), ("write-backs", _check_notes)):
            found, count = check(session)
            findings += found
            checked[name] = count
        notices = _outbox_notices(session)
        session.rollback()
    return VerifyReport(tuple(findings), checked, tuple(notices))


@click.command("verify")
@click.pass_context
def verify_command(ctx: click.Context) -> None:
    """Check the stored money invariants (entries, numbers, documents, notes); exit 1 on a finding."""
    from addon.db import migrated
    from addon.settings import SettingsError, settings_from_environment

    try:
        settings = settings_from_environment((ctx.find_root().obj or {}).get("env_file"))
    except SettingsError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
    with migrated(settings.database_url) as factory:
        report = verify(factory, settings)
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        sys.exit(1)
