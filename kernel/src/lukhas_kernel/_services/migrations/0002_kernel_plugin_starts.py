"""Kernel tables: each plugin's consecutive failed starts, and the stage
markers of starts under way (crash-loop quarantine).

Revision ID: kernel_0002
Revises: kernel_0001
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "kernel_0002"
down_revision = "kernel_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lukhas_plugin_starts",
        sa.Column("plugin", sa.Text, primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_stage", sa.Text, nullable=True),
        sa.Column("last_reason", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "lukhas_plugin_markers",
        sa.Column("plugin", sa.Text, primary_key=True),
        sa.Column("process", sa.Text, primary_key=True),
        sa.Column("stage", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("lukhas_plugin_markers")
    op.drop_table("lukhas_plugin_starts")
