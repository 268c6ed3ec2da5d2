"""archive.hub_hash: the hub record's hash when a link last synced it

A link that carries only part of a record (a CardDAV link carries no tax number) keeps in
``archive.hash`` the hash of what it carries; "pending" compares the hub record's own hash
with ``hub_hash`` instead, so a record is not pending for a link just because the link does
not carry all of it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 16:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("archive") as batch:
        batch.add_column(sa.Column("hub_hash", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("archive") as batch:
        batch.drop_column("hub_hash")
