"""The web UI (issue 16): users and API tokens, payments, deferred entries, overview indexes.

Only new tables and indexes: no existing table is recreated (the GoBD triggers of 0002 stay).
Payments live in their own table because the invoice row is frozen once issued.

Revision ID: i16_ui
Revises: i11_open_and_merged
"""

import sqlalchemy as sa
from alembic import op

revision = "i16_ui"
down_revision = "i11_open_and_merged"
branch_labels = None
depends_on = None

# (name, table, columns, partial-index condition)
INDEXES = (
    ("ix_ticket_billing_status", "ticket", ["billing_status", "closed_at"], None),
    ("ix_ticket_customer_id", "ticket", ["customer_id", "billing_status"], None),
    ("ix_time_entry_ticket_id", "time_entry", ["ticket_id"], None),
    ("ix_time_entry_booked_at", "time_entry", ["booked_at", "agent", "minutes"], "removed_at IS NULL"),
    ("ix_time_entry_written_off", "time_entry", ["booked_at", "minutes"], "not_billed_reason IS NOT NULL"),
    ("ix_billed_entry_invoice_id", "billed_entry", ["invoice_id"], None),
    ("ix_billed_entry_minutes", "billed_entry", ["entry_id", "billed_minutes"], None),
    ("ix_invoice_issued_at", "invoice", ["issued_at", "customer_id", "net"], None),
    ("ix_invoice_state", "invoice", ["state"], None),
    ("ix_invoice_customer_id", "invoice", ["customer_id"], None),
)


def upgrade() -> None:
    op.create_table(
        "app_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("login", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=200), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("language", sa.String(length=2), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("login"),
    )
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_sha256"),
    )
    op.create_table(
        "payment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoice.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_payment_invoice_id", "payment", ["invoice_id"], unique=False)
    op.create_table(
        "deferred_entry",
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("until", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["time_entry.id"]),
        sa.PrimaryKeyConstraint("entry_id"),
    )
    for name, table, columns, where in INDEXES:
        condition = {"sqlite_where": sa.text(where), "postgresql_where": sa.text(where)} if where else {}
        op.create_index(name, table, columns, unique=False, **condition)


def downgrade() -> None:
    for name, table, _columns, _where in INDEXES:
        op.drop_index(name, table_name=table)
    op.drop_table("deferred_entry")
    op.drop_index("ix_payment_invoice_id", table_name="payment")
    op.drop_table("payment")
    op.drop_table("api_token")
    op.drop_table("app_user")
