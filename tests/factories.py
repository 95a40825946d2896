"""Rows for tests to stand on (to be replaced by real factories built on the services)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert

from palier.programs.tables import programs

PROGRAM_ROW: dict[str, Any] = {
    "name": "Test program",
    "currency": "EUR",
    "currency_exponent": 2,
    "points_name": "points",
    "timezone": "Europe/Paris",
    "default_country": "FR",
    "earn_points": 1,
    "earn_per_amount": 100,
    "rounding": "floor",
    "return_window_days": 30,
    "points_lifetime_months": 12,
    "earn_on_shipping": False,
    "earn_on_tax": False,
    "earn_on_gift_cards": False,
    "return_shortfall": "debt",
    "welcome_points": 0,
    "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    "updated_at": datetime(2026, 1, 1, tzinfo=UTC),
}


def insert_program_row(conn: Connection, program_id: str, **overrides: Any) -> str:
    """Insert a bare ``programs`` row (no accounts, no keys) and return its id."""
    conn.execute(insert(programs).values({**PROGRAM_ROW, **overrides, "id": program_id}))
    return program_id
