"""Database access: engines, transactions and the one shared MetaData."""

from palier.db.engine import Database, DatabaseUrlError, make_database

__all__ = ["Database", "DatabaseUrlError", "make_database"]
