"""After the README's first command: did the demo issue its invoices, and did nothing fail?

Reads the demo's own database (instance/demo), so the verdict does not depend on the wording
of the demo's report: every sync run succeeded, no ticket ended "billing failed" (the mark of
an invoice that could not be issued, e.g. a runtime import missing from the install), and at
least one invoice was issued, each with its PDF on disk.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

DATABASE = Path("instance/demo/ticketbill.sqlite")


def main() -> int:
    if not DATABASE.is_file():
        print(f"demo check: {DATABASE} does not exist: the demo stored nothing")
        return 1
    with sqlite3.connect(DATABASE) as db:
        failed_runs = db.execute("SELECT id, error FROM sync_run WHERE status != 'succeeded'").fetchall()
        failed_tickets = db.execute(
            "SELECT number, attention_reason FROM ticket WHERE attention_reason LIKE '%billing failed%'"
        ).fetchall()
        invoices = db.execute("SELECT number, pdf_path FROM invoice WHERE number IS NOT NULL").fetchall()
    missing_pdfs = [number for number, pdf in invoices if not pdf or not Path(pdf).is_file()]
    for run_id, error in failed_runs:
        print(f"demo check: run {run_id} did not succeed: {error}")
    for number, reason in failed_tickets:
        print(f"demo check: ticket {number}: {reason}")
    for number in missing_pdfs:
        print(f"demo check: invoice {number} has no PDF on disk")
    print(f"demo check: {len(invoices)} invoices issued, {len(failed_tickets)} tickets 'billing failed', "
          f"{len(failed_runs)} runs not succeeded")
    return 1 if failed_runs or failed_tickets or missing_pdfs or not invoices else 0


if __name__ == "__main__":
    sys.exit(main())
