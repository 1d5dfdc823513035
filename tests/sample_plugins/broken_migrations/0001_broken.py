"""A revision whose upgrade fails.

Revision ID: broken_0001
Revises:
"""

from alembic import op

revision = "broken_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE broken_migration_items (id INTEGER PRIMARY KEY)")
    op.execute("INSERT INTO no_such_table VALUES (1)")


def downgrade() -> None:
    op.drop_table("broken_migration_items")
