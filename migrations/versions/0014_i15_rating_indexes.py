"""Rating reads a customer's tickets and a ticket's merged tickets through indexes.

- `ticket(billing_customer_id)`: with `ix_ticket_customer_id`, the tickets a customer pays for
  (`billing_customer_id`, else `customer_id`) are found without reading every ticket; the
  monthly pass did that for each customer, several times.
- `ticket(merged_into)`: the tickets merged into one, looked up for every rated ticket.

Plain `create_index`: the ticket table carries no GoBD trigger (0002).

Revision ID: i15_rating_indexes
Revises: i15_billing_changes
"""

from alembic import op

revision = "i15_rating_indexes"
down_revision = "i15_billing_changes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_ticket_billing_customer_id", "ticket", ["billing_customer_id"])
    op.create_index("ix_ticket_merged_into", "ticket", ["merged_into"])


def downgrade() -> None:
    op.drop_index("ix_ticket_merged_into", table_name="ticket")
    op.drop_index("ix_ticket_billing_customer_id", table_name="ticket")
