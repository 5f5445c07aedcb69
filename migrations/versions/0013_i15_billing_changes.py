"""A change log of billing inputs, so an idle run skips the monthly pass (issue 15).

- `billing_change`: one row per committed transaction that wrote something billing reads
  (`addon.change_log`); pruned by the monthly pass to its newest row.
- `billing_pass_mark`: the fingerprint (change log, period, settings, schema) a complete
  monthly pass saw; an equal fingerprint at the next run skips the pass.

Revision ID: i15_billing_changes
Revises: i15_written_versions
"""

import sqlalchemy as sa
from alembic import op

revision = "i15_billing_changes"
down_revision = "i15_written_versions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "billing_change",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("writer", sa.String(64), nullable=True),
    )
    op.create_table(
        "billing_pass_mark",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("fingerprint", sa.String(500), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("billing_pass_mark")
    op.drop_table("billing_change")
