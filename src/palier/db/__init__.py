"""Database access: engines, transactions and the one shared MetaData."""

from palier.db.engine import Database, make_database

__all__ = ["Database", "make_database"]
