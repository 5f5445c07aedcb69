"""The words for stored values (billing status, invoice state, run status, roles, contract kinds),
translated where they are shown: the database keeps the English key, the page the reader's word."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

TERMS = {
    # ticket billing status
    "unbilled": _l("unbilled"), "needs_attention": _l("needs attention"), "draft": _l("draft"),
    "invoiced": _l("invoiced"), "not_billable": _l("not billable"), "cancelled": _l("cancelled"),
    "open_work": _l("not yet fully billed"), "drafted": _l("draft"), "deferred": _l("moved to a later invoice"),
    "already_invoiced": _l("invoiced"), "already_draft": _l("draft"), "still_open": _l("open"),
    # invoice state, payment, delivery
    "issued": _l("issued"), "sent": _l("sent"), "paid": _l("paid"), "partly_paid": _l("partly paid"),
    "pending": _l("pending"), "failed": _l("failed"),
    # runs
    "running": _l("running"), "succeeded": _l("succeeded"), "aborted": _l("aborted"),
    # roles
    "admin": _l("Admin"), "team_lead": _l("Team lead"), "accountant": _l("Accountant"), "viewer": _l("Viewer"),
    # contracts and series
    "time_and_material": _l("time and material"), "retainer": _l("retainer"), "per_ticket": _l("per ticket"),
    "monthly": _l("monthly"), "invoice": _l("invoice"), "cancellation": _l("cancellation"),
    "near": _l("near the limit"), "over": _l("over the limit"),
    # rounding modes and what covers a line's time (the line's explanation)
    "up": _l("up"), "nearest": _l("nearest"), "down": _l("down"),
    "overage": _l("over the contingent"), "allowance": _l("from the monthly contingent"),
}


#: UN/ECE Rec. 20 unit codes on invoice lines, as a reader writes them
UNITS = {"HUR": _l("h"), "C62": _l("pcs"), "KMT": _l("km"), "DAY": _l("days"), "MON": _l("months")}


def unit(code: str) -> str:
    return str(UNITS.get(code, code))


def term(value: str | None) -> str:
    """The reader's word for a stored value (the value itself when there is none)."""
    if value is None:
        return "—"
    return str(TERMS.get(value, value.replace("_", " ")))
