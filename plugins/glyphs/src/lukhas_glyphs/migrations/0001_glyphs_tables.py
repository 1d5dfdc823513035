"""glyphs_bindings, glyphs_audit.

Revision ID: glyphs_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "glyphs_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "glyphs_bindings",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("source", sa.String(170), nullable=False),
        sa.Column("target", sa.String(170), nullable=False),
        sa.Column("symbol", sa.String(8), nullable=False),
        sa.Column("priority", sa.String(8), nullable=False),
        sa.Column("context", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("glyphs_bindings_owner_created", "glyphs_bindings", ["owner", "created_at", "id"])
    op.create_index("glyphs_bindings_owner_source", "glyphs_bindings", ["owner", "source"])
    op.create_table(
        "glyphs_audit",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("glyph_id", sa.String(40), nullable=True),
        sa.Column("actor", sa.String(64), nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_glyphs_audit_glyph_id", "glyphs_audit", ["glyph_id"])
    op.create_index("ix_glyphs_audit_actor", "glyphs_audit", ["actor"])


def downgrade() -> None:
    op.drop_table("glyphs_audit")
    op.drop_table("glyphs_bindings")
