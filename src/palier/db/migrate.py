"""Running Palier's packaged Alembic migrations from code (``palier db upgrade``), no alembic.ini needed.

The migrations ship inside the package (``palier/db/migrations``), so an installed Palier can upgrade
its database anywhere. A new revision is written the same way, from a checkout::

    from alembic import command
    command.revision(alembic_config("sqlite:///scratch.db"), "add tiers", autogenerate=True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from palier.db.engine import make_database
from palier.db.schema import metadata

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic configuration for ``url``, built in memory."""
    config = Config()
    # Values go through ConfigParser interpolation: a "%" (URL-encoded password, odd path) must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (a no-op when it is already there)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at ``url`` down to ``revision`` (``"base"`` drops every table)."""
    command.downgrade(alembic_config(url), revision)


def head() -> str | None:
    """The newest revision shipped with this version of Palier."""
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


def current(url: str) -> str | None:
    """The revision the database at ``url`` is at (None when it was never migrated)."""
    database = make_database(url, pool_size=0)
    try:
        with database.read() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        database.dispose()


def schema_diffs(conn: Connection) -> list[Any]:
    """How the database behind ``conn`` differs from the tables Palier declares (empty when in step)."""
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))
