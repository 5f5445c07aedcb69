"""what happens to the work of a cancelled invoice (issue 11)

`ticket.billing_hold`: the ticket waits for a decision (why, and which cancellation).
`ticket.billing_customer_id` / `ticket.billing_contract`: the work is billed to another
customer or under another contract than the helpdesk's organization would say.
`time_entry.written_off` / `booked_extra.written_off`: written off with the reason; never billed.

Revision ID: i11_cancel_decisions
Revises: i11_review_items
"""

import sqlalchemy as sa
from alembic import op

revision = "i11_cancel_decisions"
down_revision = "i11_review_items"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ticket", sa.Column("billing_hold", sa.Text(), nullable=True))
    op.add_column("ticket", sa.Column("billing_customer_id", sa.Integer(), nullable=True))
    op.add_column("ticket", sa.Column("billing_contract", sa.String(length=50), nullable=True))
    op.add_column("time_entry", sa.Column("written_off", sa.String(length=200), nullable=True))
    op.add_column("booked_extra", sa.Column("written_off", sa.String(length=200), nullable=True))


def downgrade() -> None:
    op.drop_column("booked_extra", "written_off")
    op.drop_column("time_entry", "written_off")
    op.drop_column("ticket", "billing_contract")
    op.drop_column("ticket", "billing_customer_id")
    op.drop_column("ticket", "billing_hold")
