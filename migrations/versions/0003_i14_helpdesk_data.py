"""What the helpdesk itself says about tickets and customers: unreadable bookings, customer
billing data kept in the helpdesk, and which fields the JSON import overrides.

- `ticket.access_problem`: the helpdesk lists the ticket but refuses its bookings to the API
  user (a missing group or queue right); the ticket needs attention with this reason and is
  read again on every run until it clears.
- `customer.imported_fields`: the billing-data keys JSON imports set (comma-separated; text,
  as customer rows are selected DISTINCT); helpdesk data (Zammad organization fields) never
  overwrites them.
- `customer.helpdesk_problems`: helpdesk billing data that failed validation (e.g. a VAT ID
  with a bad checksum); while set, the customer's tickets are not billed.

Plain `add_column`: neither table carries the GoBD triggers of 0002.

Revision ID: i14_helpdesk_data
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "i14_helpdesk_data"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ticket", sa.Column("access_problem", sa.Text(), nullable=True))
    op.add_column("customer", sa.Column("imported_fields", sa.String(500), nullable=True))
    op.add_column("customer", sa.Column("helpdesk_problems", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("customer", "helpdesk_problems")
    op.drop_column("customer", "imported_fields")
    op.drop_column("ticket", "access_problem")
