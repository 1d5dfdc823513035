"""A label column; its down_revision is misspelt (dangling_001).

Revision ID: dangling_0002
Revises: dangling_001
"""

import sqlalchemy as sa
from alembic import op

revision = "dangling_0002"
down_revision = "dangling_001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("dangling_revision_items", sa.Column("label", sa.Text))


def downgrade() -> None:
    op.drop_column("dangling_revision_items", "label")
