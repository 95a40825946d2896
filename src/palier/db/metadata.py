"""The one MetaData every domain's ``tables.py`` registers on, with stable constraint names."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, MetaData
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Autoincrementing 64-bit ids: BIGSERIAL on PostgreSQL, INTEGER PRIMARY KEY (rowid) on SQLite.
BigId = BigInteger().with_variant(sqlite.INTEGER(), "sqlite")
# JSONB on PostgreSQL.
Json = JSON().with_variant(postgresql.JSONB(), "postgresql")


class _Moment(TypeDecorator[datetime]):
    """A moment, stored in UTC. PostgreSQL keeps the offset itself; SQLite stores the wall-clock digits alone,
    so a moment sent as ``2026-12-20T00:00+01:00`` would read back as midnight UTC, an hour late. Every
    aware value is turned to UTC on its way in, on both engines."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(UTC) if value is not None and value.tzinfo is not None else value


Timestamp = _Moment()
