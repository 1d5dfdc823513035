"""Kernel tables: users, tokens, persisted run-time flags.

Revision ID: kernel_0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "kernel_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lukhas_users",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "lukhas_tokens",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("prefix", sa.String(12), nullable=False),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("lukhas_users.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_lukhas_tokens_prefix", "lukhas_tokens", ["prefix"])
    op.create_index("ix_lukhas_tokens_user_id", "lukhas_tokens", ["user_id"])
    op.create_table(
        "lukhas_flags",
        sa.Column("name", sa.String(80), primary_key=True),
        sa.Column("value", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(32), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("lukhas_flags")
    op.drop_index("ix_lukhas_tokens_user_id", "lukhas_tokens")
    op.drop_index("ix_lukhas_tokens_prefix", "lukhas_tokens")
    op.drop_table("lukhas_tokens")
    op.drop_table("lukhas_users")
