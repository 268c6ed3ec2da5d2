"""links.retry_at / failures / parked: the scheduler's error state

After a transient error the scheduler retries the link at ``retry_at``, backing off with
``failures``; after a terminal one it stops the link (``parked``: the reason) until a person
syncs it, resumes it or corrects the configuration.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 21:25:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("links") as batch:
        batch.add_column(sa.Column("retry_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("failures", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("parked", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("links") as batch:
        for col in ("parked", "failures", "retry_at"):
            batch.drop_column(col)
