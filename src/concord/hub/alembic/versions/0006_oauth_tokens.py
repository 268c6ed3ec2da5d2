"""oauth_tokens and spoke_idents: one OAuth2 token set per practice and provider (Xero
Practice Manager); the ids Concord gave the records it created at a spoke without
client-chosen ids, so a create whose answer was lost is found again

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 19:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_tokens",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=True),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("refresh_token", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "provider"),
    )
    op.create_table(
        "spoke_idents",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("link", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("ident", sa.String(length=64), nullable=False),
        sa.Column("ref", sa.String(length=128), nullable=True),
        sa.Column("fingerprint", sa.Text(), nullable=True),
        sa.Column("attempted_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "link", "entity", "ident"),
    )
    op.create_index("ix_spoke_idents_ref", "spoke_idents", ["tenant", "link", "entity", "ref"])


def downgrade() -> None:
    op.drop_index("ix_spoke_idents_ref", table_name="spoke_idents")
    op.drop_table("spoke_idents")
    op.drop_table("oauth_tokens")
