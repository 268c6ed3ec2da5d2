"""exclusions: hub records a link's mapping leaves out on purpose, at which feed position

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 09:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exclusions",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("link", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("hub_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("selection", sa.String(length=32), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "link", "entity", "hub_id"),
    )
    op.create_index("ix_exclusions_selection", "exclusions", ["tenant", "link", "entity", "selection"])


def downgrade() -> None:
    op.drop_index("ix_exclusions_selection", table_name="exclusions")
    op.drop_table("exclusions")
