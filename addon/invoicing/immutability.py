"""GoBD immutability of issued invoices: an ORM guard here, database triggers in migration 0002.

Two layers, because either alone can be bypassed: the ORM guard gives a clear Python error at
the line that tries to change an issued invoice; the triggers also stop raw SQL, a psql session
or a second program. Both let exactly the lifecycle columns move on (state, cancellation link,
delivery and payment dates); everything printed on the document is frozen once it leaves the
draft state. Drafts are free to change or be discarded.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from addon.models import AuditLog, BillingHistory, Invoice, InvoiceLine

DRAFT = "draft"

#: Columns of `invoice` that are part of the issued document and never change after issue.
FROZEN_INVOICE_COLUMNS = (
    "series", "number", "type_code", "customer_id", "ticket_id", "issued_at", "net", "vat",
    "gross", "snapshot", "pdf_path", "pdf_sha256", "xml_path", "xml_sha256", "access_key",
    "cancels_id",
)
FROZEN_LINE_COLUMNS = (
    "invoice_id", "position", "description", "quantity", "unit", "unit_price", "net", "explanation",
)

#: Allowed state transitions of a document; anything else is refused.
TRANSITIONS: dict[str, frozenset[str]] = {
    DRAFT: frozenset({"issued"}),
    "issued": frozenset({"sent", "paid", "cancelled"}),
    "sent": frozenset({"paid", "cancelled"}),
    "paid": frozenset({"cancelled"}),
    "cancelled": frozenset(),
}


class ImmutableInvoiceError(ValueError):
    """An attempt to change or delete an issued invoice, its lines or the audit trail."""


def _committed(obj: Any, name: str) -> Any:
    """The value as loaded from the database, even when the attribute was changed since."""
    history = inspect(obj).attrs[name].history
    if history.deleted:
        return history.deleted[0]
    if history.unchanged:
        return history.unchanged[0]
    return getattr(obj, name)


def _changed(obj: Any, names: tuple[str, ...]) -> list[str]:
    state = inspect(obj)
    return [name for name in names if state.attrs[name].history.has_changes()]


def _invoice_is_issued(session: Session, invoice_id: int | None) -> bool:
    if invoice_id is None:
        return False
    invoice = session.get(Invoice, invoice_id)
    return invoice is not None and _committed(invoice, "state") != DRAFT


def check_flush(session: Session) -> None:
    """Refuse pending changes that would alter an issued document or the trails."""
    for obj in session.dirty:
        if isinstance(obj, Invoice) and session.is_modified(obj):
            old_state = _committed(obj, "state")
            if old_state != DRAFT:
                changed = _changed(obj, FROZEN_INVOICE_COLUMNS)
                if changed:
                    raise ImmutableInvoiceError(
                        f"invoice {obj.number} is issued; {', '.join(changed)} cannot change (GoBD)"
                    )
            if obj.state != old_state and obj.state not in TRANSITIONS.get(old_state, frozenset()):
                raise ImmutableInvoiceError(
                    f"invoice {obj.number or obj.id}: state {old_state} cannot become {obj.state}"
                )
        elif isinstance(obj, InvoiceLine) and session.is_modified(obj):
            changed = _changed(obj, FROZEN_LINE_COLUMNS)
            if changed and _invoice_is_issued(session, _committed(obj, "invoice_id")):
                raise ImmutableInvoiceError(f"lines of an issued invoice cannot change ({', '.join(changed)})")
        elif isinstance(obj, AuditLog | BillingHistory) and session.is_modified(obj):
            raise ImmutableInvoiceError(f"{type(obj).__tablename__} is append-only")
    for obj in session.new:
        if isinstance(obj, InvoiceLine) and _invoice_is_issued(session, obj.invoice_id):
            raise ImmutableInvoiceError("no line can be added to an issued invoice (GoBD)")
    for obj in session.deleted:
        if isinstance(obj, Invoice) and _committed(obj, "state") != DRAFT:
            raise ImmutableInvoiceError(f"invoice {obj.number} is issued and cannot be deleted (GoBD)")
        if isinstance(obj, InvoiceLine) and _invoice_is_issued(session, obj.invoice_id):
            raise ImmutableInvoiceError("lines of an issued invoice cannot be deleted (GoBD)")
        if isinstance(obj, AuditLog | BillingHistory):
            raise ImmutableInvoiceError(f"{type(obj).__tablename__} is append-only")


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    check_flush(session)
