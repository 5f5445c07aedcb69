"""Run locks that die with their holder; write-backs retried forever with backoff.

- `job_lock` goes: the run lock is now a PostgreSQL session advisory lock or an OS file lock
  on SQLite (addon.sync.runs); a lease row stayed held for 30 minutes after a `kill -9`.
- `outbox.next_attempt_at`: when a pending row is tried again (exponential backoff, capped);
  a row never gives up for good any more.
- `outbox.in_doubt`: an attempt was started but its outcome is unknown (a timeout, a reset, a
  5xx, or a crash before the outcome was committed): the next attempt reads back first.

Plain add/drop column: the outbox carries none of the GoBD triggers of 0002.

Revision ID: i12a_locks
Revises: i14_helpdesk_data
"""

import sqlalchemy as sa
from alembic import op

revision = "i12a_locks"
down_revision = "i14_helpdesk_data"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("job_lock")
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("in_doubt", sa.Boolean(), nullable=False, server_default=sa.false()))
    # rows that had given up are retried: nothing about them was final
    op.execute("UPDATE outbox SET status = 'pending' WHERE status = 'failed' AND kind = 'ticket_writeback'")


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("in_doubt")
        batch.drop_column("next_attempt_at")
    op.create_table("job_lock",
                    sa.Column("name", sa.String(length=50), nullable=False),
                    sa.Column("holder", sa.String(length=200), nullable=False),
                    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
                    sa.PrimaryKeyConstraint("name"))
