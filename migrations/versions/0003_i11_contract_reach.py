"""contracts reach only the time they were meant for (issue 11)

`contract.known_entry_mark`: the highest time entry id when the contract was imported; entries
ticketbill already held then keep the terms they had (unless applied explicitly).
`contract.applies_from`: the day from which the admin applied the contract to that known time
(`ticketbill contracts import --apply-from`, after a preview).

Revision ID: i11_contract_reach
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "i11_contract_reach"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("contract", sa.Column("known_entry_mark", sa.Integer(), nullable=True))
    op.add_column("contract", sa.Column("applies_from", sa.Date(), nullable=True))


def downgrade() -> None:
    op.drop_column("contract", "applies_from")
    op.drop_column("contract", "known_entry_mark")
