"""runs.owner, and the retry state of quarantined records

``runs.owner``: the process running a run (host:pid). A run whose process was killed stayed
"running" in the journal for ever; with its owner noted, the next start of a sync or of the
service marks it interrupted.

``quarantine.version`` / ``seq`` / ``attempts`` / ``retry_at``: a quarantined record is tried
again when it changes (its spoke version), when a record of a parent type changes (the hub's
seq moved past ``seq``), or when its backoff (``retry_at``) ends, not on every run.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 19:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=128), nullable=True))
    with op.batch_alter_table("quarantine") as batch:
        batch.add_column(sa.Column("version", sa.String(length=512), nullable=True))
        batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("retry_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("quarantine") as batch:
        for col in ("retry_at", "attempts", "seq", "version"):
            batch.drop_column(col)
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("owner")
