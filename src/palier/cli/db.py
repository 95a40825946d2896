"""``palier db``: bring the database's schema up to date."""

from __future__ import annotations

from palier.cli.common import console, new_app, settings
from palier.db import migrate

app = new_app("The database: create or upgrade its schema.")


@app.command("upgrade")
def upgrade() -> None:
    """Create the tables, or migrate them to this version of Palier (safe to run again).

    The database is PALIER_DATABASE_URL (default: sqlite:///palier.db in this directory).
    """
    url = settings().database_url
    before = migrate.current(url)
    if before is not None and not migrate.known(before):  # a newer Palier's tables: leave them as they are
        raise migrate.too_new(before)
    migrate.upgrade(url)
    after = migrate.current(url)
    if before == after:
        console.print(f"Database already at revision [bold]{after}[/bold]: nothing to do.")
    else:
        console.print(f"Database upgraded from {before or 'empty'} to revision [bold]{after}[/bold].")
