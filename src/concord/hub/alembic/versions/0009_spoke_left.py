"""spoke_left: spoke items a link's selection leaves out, at which version

A spoke that lists in full names every item on every run; an item its link does not carry
(a value map without its value, a filter it does not pass) is read again only when its
version or the link's selection changes.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 21:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spoke_left",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("link", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.String(length=512), nullable=False),
        sa.Column("version", sa.String(length=256), nullable=False),
        sa.Column("selection", sa.String(length=32), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("ident", sa.String(length=512), nullable=True),
        sa.Column("hash", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("tenant", "link", "entity", "ref"),
    )
    op.create_index("ix_spoke_left_ident", "spoke_left", ["tenant", "link", "entity", "ident"])


def downgrade() -> None:
    op.drop_index("ix_spoke_left_ident", table_name="spoke_left")
    op.drop_table("spoke_left")
