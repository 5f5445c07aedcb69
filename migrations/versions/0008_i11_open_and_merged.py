"""open work and merged tickets (issue 11)

`ticket.merged_into`: the surviving ticket's helpdesk id when this one was merged into it and
its time stays here (Zammad); "" when the helpdesk moved the time to the survivor itself.

Revision ID: i11_open_and_merged
Revises: i11_cancel_decisions
"""

import sqlalchemy as sa
from alembic import op

revision = "i11_open_and_merged"
down_revision = "i11_cancel_decisions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ticket", sa.Column("merged_into", sa.String(length=100), nullable=True))


def downgrade() -> None:
    op.drop_column("ticket", "merged_into")
