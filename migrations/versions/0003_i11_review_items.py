"""review items: what a person must look at after billing (issue 11)

A billed entry changed in the helpdesk, a category changed to warranty after the invoice, a
billed ticket reopened, new time held on an invoiced ticket: billing never changes an issued
invoice and never lets the ticket's status regress, so these become review items with one
internal note each.

Revision ID: i11_review_items
Revises: i11_contract_reach
"""

import sqlalchemy as sa
from alembic import op

revision = "i11_review_items"
down_revision = "i11_contract_reach"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ticket_id", "key"),
    )


def downgrade() -> None:
    op.drop_table("review_item")
