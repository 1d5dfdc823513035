"""dreams_jobs: who runs a job and until when (leases), for several host processes.

Revision ID: dreams_0002
Revises: dreams_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "dreams_0002"
down_revision = "dreams_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dreams_jobs") as batch:
        # "<hostname>:<pid>:<incarnation>:<node>" of the process that claimed it last.
        batch.add_column(sa.Column("runner", sa.String(320), nullable=True))
        # A running job whose lease has passed is taken over by any live process.
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    # Jobs left running by a host of the previous version: their lease is over.
    op.execute(sa.text("UPDATE dreams_jobs SET lease_expires_at = created_at WHERE status = 'running'"))
    # The claim's and the poll's queries: by status, oldest first.
    op.drop_index("dreams_jobs_status", "dreams_jobs")
    op.create_index("dreams_jobs_status_created", "dreams_jobs", ["status", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("dreams_jobs_status_created", "dreams_jobs")
    op.create_index("dreams_jobs_status", "dreams_jobs", ["status"])
    with op.batch_alter_table("dreams_jobs") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("runner")
