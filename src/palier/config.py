"""Settings read from the environment (never from the database)."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEMO_CARD_KEY = "palier-demo-card-key-not-for-production"


@dataclass(frozen=True)
class Settings:
    database_url: str
    card_hash_key: bytes

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings() -> Settings:
    """``PALIER_DATABASE_URL`` (default ``sqlite:///palier.db``) and ``PALIER_CARD_KEY``.

    ``PALIER_CARD_KEY`` keys the HMAC under which payment cards are stored; production must set it.
    """
    return Settings(
        database_url=os.environ.get("PALIER_DATABASE_URL", "sqlite:///palier.db"),
        card_hash_key=os.environ.get("PALIER_CARD_KEY", DEMO_CARD_KEY).encode(),
    )
