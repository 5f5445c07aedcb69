"""scheduler heartbeat: the one scheduler's sign of life, read by /readyz of any web process

Revision ID: i10_scheduler_heartbeat
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "i10_scheduler_heartbeat"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_heartbeat",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sync_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("scheduler_heartbeat")
