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

Before this revision all billing data came from JSON imports: every billing field a customer
row already holds is marked as imported, so an upgraded sidecar never lets empty helpdesk
fields wipe it. Plain `add_column`: neither table carries the GoBD triggers of 0002.

Revision ID: i14_helpdesk_data
Revises: i16_ui
"""

import sqlalchemy as sa
from alembic import op

revision = "i14_helpdesk_data"
down_revision = "i16_ui"
#: the billing-data columns of `customer` (as addon.customers.BILLING_FIELDS at this revision)
BILLING_FIELDS = ("legal_name", "street", "postcode", "city", "country", "vat_id",
                  "customer_number", "email", "buyer_reference")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ticket", sa.Column("access_problem", sa.Text(), nullable=True))
    op.add_column("customer", sa.Column("imported_fields", sa.String(500), nullable=True))
    op.add_column("customer", sa.Column("helpdesk_problems", sa.Text(), nullable=True))
    customer = sa.table("customer", sa.column("id"), sa.column("imported_fields"),
                        *(sa.column(name) for name in BILLING_FIELDS))
    bind = op.get_bind()
    for row in bind.execute(sa.select(customer)).mappings().all():
        keys = [name for name in BILLING_FIELDS if row[name]]
        if keys:
            bind.execute(customer.update().where(customer.c.id == row["id"])
                         .values(imported_fields=",".join(sorted(keys))))


def downgrade() -> None:
    op.drop_column("customer", "helpdesk_problems")
    op.drop_column("customer", "imported_fields")
    op.drop_column("ticket", "access_problem")
