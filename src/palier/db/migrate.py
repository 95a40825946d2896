"""Running Palier's packaged Alembic migrations from code (``palier db upgrade``), no alembic.ini needed.

The migrations ship inside the package (``palier/db/migrations``), so an installed Palier can upgrade
its database anywhere. A new revision is written the same way, from a checkout::

    from alembic import command
    command.revision(alembic_config("sqlite:///scratch.db"), "add tiers", autogenerate=True)
"""

from __future__ import annotations

from functools import cache
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
from palier.errors import PalierError

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


@cache  # read from the files shipped with this version, which do not change while it runs
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


@cache
def known(revision: str) -> bool:
    """Whether ``revision`` is one of the migrations shipped with this version of Palier."""
    scripts = ScriptDirectory.from_config(alembic_config(""))
    return any(script.revision == revision for script in scripts.walk_revisions())


def too_new(revision: str) -> PalierError:
    """The refusal for a database migrated by a newer Palier than this one: its code would not fit the tables."""
    return PalierError(
        "database_too_new",
        f"The database is at revision {revision}, which this version of Palier does not know (it goes up to "
        f"{head()}): a newer Palier migrated it. Run that version, or restore the backup taken before it.",
        field="PALIER_DATABASE_URL",
    )


def require_current(url: str, *, place: str) -> None:
    """Refuse a database this code cannot serve: never migrated, migrated by an older Palier (``palier db
    upgrade`` brings it up to date) or by a newer one (``place`` names it). An unreachable one raises the
    driver's error."""
    if (refusal := not_servable(current(url), place=place)) is not None:
        raise refusal


def not_servable(revision: str | None, *, place: str = "") -> PalierError | None:
    """Why a database at ``revision`` cannot be served by this code (``None`` when it can)."""
    if revision == head():
        return None
    if revision is not None and not known(revision):
        return too_new(revision)
    state = "has no Palier tables yet" if revision is None else f"is at revision {revision}, this Palier needs {head()}"
    return PalierError(
        "database_not_ready",
        f"The database {place + ' ' if place else ''}{state}: run `palier db upgrade` first.",
        field="PALIER_DATABASE_URL",
    )


def schema_diffs(conn: Connection) -> list[Any]:
    """How the database behind ``conn`` differs from the tables Palier declares (empty when in step)."""
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))
