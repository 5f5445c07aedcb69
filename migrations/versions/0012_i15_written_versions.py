"""The sidecar recognises its own write-backs, and the sync's per-ticket lookups are indexed.

- `ticket.written_updated_at`: the `updated_at` the helpdesk answered to the last write-back.
  A poll that lists the ticket with exactly that version sees the sidecar's own write, not a
  change, and reads nothing (an idle poll at 5,000 tickets would otherwise read them all
  again, since every write-back bumps `updated_at`).
- Indexes: `booked_extra(ticket_id)`, `outbox(ticket_id, kind, marker)`, `outbox(status, kind)`.

Plain `add_column` / `create_index`: neither table carries the GoBD triggers of 0002.

Revision ID: i15_written_versions
Revises: i12a_locks
"""

import sqlalchemy as sa
from alembic import op

revision = "i15_written_versions"
down_revision = "i12a_locks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ticket", sa.Column("written_updated_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_booked_extra_ticket_id", "booked_extra", ["ticket_id"])
    op.create_index("ix_outbox_ticket_id", "outbox", ["ticket_id", "kind", "marker"])
    op.create_index("ix_outbox_status", "outbox", ["status", "kind"])


def downgrade() -> None:
    op.drop_index("ix_outbox_status", table_name="outbox")
    op.drop_index("ix_outbox_ticket_id", table_name="outbox")
    op.drop_index("ix_booked_extra_ticket_id", table_name="booked_extra")
    op.drop_column("ticket", "written_updated_at")
