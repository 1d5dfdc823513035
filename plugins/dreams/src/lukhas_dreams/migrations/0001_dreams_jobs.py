"""dreams_jobs table.

Revision ID: dreams_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "dreams_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dreams_jobs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("fragments", sa.JSON, nullable=False),
        sa.Column("fragment_count", sa.Integer, nullable=False),
        sa.Column("branches", sa.Integer, nullable=False),
        sa.Column("depth", sa.Integer, nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("result", sa.JSON, nullable=True),
    )
    op.create_index("dreams_jobs_owner_created", "dreams_jobs", ["owner", "created_at", "id"])
    op.create_index("dreams_jobs_status", "dreams_jobs", ["status"])


def downgrade() -> None:
    op.drop_table("dreams_jobs")
