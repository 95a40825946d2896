"""Alembic environment: brings a database to the shape of Palier's one shared MetaData.

Run through :mod:`palier.db.migrate`, which passes the URL in ``sqlalchemy.url``. Online, all pending
revisions run in one transaction (``BEGIN IMMEDIATE`` on SQLite; on PostgreSQL behind an advisory
lock, so app instances starting together do not race). Offline (``--sql``) prints the SQL instead.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import event, text

from palier.db.engine import make_database
from palier.db.schema import metadata

config = context.config


def _foreign_keys_off(dbapi_conn: Any, _record: Any) -> None:
    # Batch migrations rebuild a SQLite table (copy, drop, rename); with foreign keys enforced the drop
    # would fail or cascade. They are checked once, before commit, with PRAGMA foreign_key_check.
    dbapi_conn.execute("PRAGMA foreign_keys=OFF")


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url") or ""
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    database = make_database(config.get_main_option("sqlalchemy.url") or "", pool_size=0)
    if database.is_sqlite:
        event.listen(database.engine, "connect", _foreign_keys_off)
    try:
        with database.write() as connection:
            context.configure(connection=connection, target_metadata=metadata, render_as_batch=database.is_sqlite)
            if database.is_postgres:
                connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('palier.migrations'))"))
            context.run_migrations()
            if database.is_sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"migration left rows with broken foreign keys: {broken[:10]}")
    finally:
        database.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
