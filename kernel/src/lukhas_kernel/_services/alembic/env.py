"""Alembic environment shared by every owner: the kernel passes the connection
and the owner's version table in `config.attributes` (see `storage.py`)."""

from alembic import context

config = context.config
context.configure(
    connection=config.attributes["connection"],
    version_table=config.attributes["version_table"],
    render_as_batch=True,  # SQLite needs batch mode to alter tables
)
with context.begin_transaction():
    context.run_migrations()
