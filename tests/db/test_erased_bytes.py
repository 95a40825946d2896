"""What Palier deletes on SQLite leaves no copy in the database file (an erased member's e-mail, say)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from palier.db import make_database


def test_a_deleted_row_is_zeroed_in_the_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "palier.db"
    db = make_database(f"sqlite:///{path}")
    try:
        with db.write() as conn:
            conn.execute(text("CREATE TABLE contacts (id INTEGER PRIMARY KEY, email TEXT)"))
            conn.execute(
                text("INSERT INTO contacts (email) VALUES (:email)"),
                [{"email": f"person{i}@example.org"} for i in range(500)],
            )
        with db.write() as conn:
            conn.execute(text("DELETE FROM contacts WHERE email = 'person250@example.org'"))
    finally:
        db.dispose()  # the last connection closed writes the WAL back into the file
    written = path.read_bytes() + (
        path.with_name("palier.db-wal").read_bytes() if path.with_name("palier.db-wal").exists() else b""
    )
    assert b"person251@example.org" in written  # the rows kept are there
    assert b"person250@example.org" not in written  # the one deleted is not, not even in free space
