"""blobs: content-addressed e-mail attachments and raw messages; contact candidates

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 19:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "sha256"),
    )
    op.create_table(
        "blob_chunks",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "sha256", "n"),
    )
    op.create_table(
        "contact_candidates",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("link", sa.String(length=64), nullable=False),
        sa.Column("email_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False, server_default="open"),
        sa.PrimaryKeyConstraint("tenant", "address"),
    )


def downgrade() -> None:
    op.drop_table("contact_candidates")
    op.drop_table("blob_chunks")
    op.drop_table("blobs")
