"""runs.owner: the process running a run (host:pid)

A run whose process was killed stayed "running" in the journal for ever; with its owner
noted, the next start of a sync or of the service marks it interrupted.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 19:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("owner")
