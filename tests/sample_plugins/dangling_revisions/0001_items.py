"""dangling_revision_items table.

Revision ID: dangling_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "dangling_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("dangling_revision_items", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("dangling_revision_items")
