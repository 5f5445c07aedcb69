"""Customer layouts and discounts: per customer an invoice template and letterhead, and
discounts ("Rabatte") per customer and per contract.

Configuration columns only; issued documents keep what was used in their frozen snapshot
(template, letterhead, allowances), which the GoBD guard and triggers of 0002 already cover.
Plain add_column: works on SQLite and PostgreSQL without recreating any table.

Revision ID: i13_layouts_discounts
Revises: i10_scheduler_heartbeat
"""

import sqlalchemy as sa
from alembic import op

revision = "i13_layouts_discounts"
down_revision = "i10_scheduler_heartbeat"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("customer", sa.Column("invoice_template", sa.String(50), nullable=True))
    op.add_column("customer", sa.Column("letterhead", sa.String(500), nullable=True))
    op.add_column("customer", sa.Column("discounts", sa.Text(), nullable=True))
    op.add_column("contract", sa.Column("discounts", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("contract", "discounts")
    op.drop_column("customer", "discounts")
    op.drop_column("customer", "letterhead")
    op.drop_column("customer", "invoice_template")
