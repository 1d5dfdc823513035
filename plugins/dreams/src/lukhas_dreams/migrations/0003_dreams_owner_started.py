"""dreams_jobs: an index on (owner, started_at), for claiming fairly across owners.

The claim takes first the owner whose latest job started longest ago
(`store._claimable`); this index answers that per owner with one lookup.

Revision ID: dreams_0003
Revises: dreams_0002
"""

from alembic import op

revision = "dreams_0003"
down_revision = "dreams_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("dreams_jobs_owner_started", "dreams_jobs", ["owner", "started_at"])


def downgrade() -> None:
    op.drop_index("dreams_jobs_owner_started", "dreams_jobs")
