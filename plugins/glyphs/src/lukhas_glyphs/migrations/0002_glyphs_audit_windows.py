"""glyphs_audit_windows: open windows of a caller's repeated failed validations.

Revision ID: glyphs_0002
Revises: glyphs_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "glyphs_0002"
down_revision = "glyphs_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "glyphs_audit_windows",
        sa.Column("actor", sa.String(64), primary_key=True),
        sa.Column("reason", sa.String(16), primary_key=True),
        sa.Column("glyph_id", sa.String(40), primary_key=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_glyphs_audit_windows_closes_at", "glyphs_audit_windows", ["closes_at"])


def downgrade() -> None:
    # Counts still open are lost with the table: seal them first (an audit listing does).
    op.drop_table("glyphs_audit_windows")
