"""vivox_interactions, vivox_daily_decisions, vivox_users.

Revision ID: vivox_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "vivox_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vivox_interactions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valence", sa.Float, nullable=False),
        sa.Column("arousal", sa.Float, nullable=False),
        sa.Column("decision", sa.String(64), nullable=False),
    )
    op.create_index("vivox_interactions_user_time", "vivox_interactions",
                    ["user_id", "timestamp", "id"])
    op.create_table(
        "vivox_daily_decisions",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("decision", sa.String(64), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.create_table(
        "vivox_users",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("interactions", sa.Integer, nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("overall_drift", sa.Float, nullable=True),
    )
    op.create_index("vivox_users_drift", "vivox_users", ["overall_drift"])


def downgrade() -> None:
    op.drop_table("vivox_users")
    op.drop_table("vivox_daily_decisions")
    op.drop_table("vivox_interactions")
