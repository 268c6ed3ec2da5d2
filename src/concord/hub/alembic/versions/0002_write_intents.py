"""write intents: what the engine is about to write to a spoke

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 05:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intents",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("link", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("hub_id", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=32), nullable=False),
        sa.Column("base", sa.Text(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "link", "entity", "hub_id"),
    )


def downgrade() -> None:
    op.drop_table("intents")
