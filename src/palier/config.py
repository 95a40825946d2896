"""Settings read from the environment (never from the database)."""

from __future__ import annotations

import math
import os
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from palier.errors import InvalidInput

DEMO_CARD_KEY = "palier-demo-card-key-not-for-production"
MIN_CARD_KEY = 32  # characters: what `openssl rand -hex 16` gives (128 bits); the README makes 64
# Without PALIER_SECRET_KEY, web sessions are signed with a key made when the process starts: they do not
# survive a restart and are not shared between processes. Production sets the variable.
_PROCESS_SECRET = secrets.token_urlsafe(32)


def _secret_key() -> str:
    return os.environ.get("PALIER_SECRET_KEY") or _PROCESS_SECRET


def public_webhooks_from_env(env: dict[str, str] | None = None) -> bool:
    """``PALIER_WEBHOOK_NETWORKS``: ``any`` (the default) sends webhooks wherever their address leads;
    ``public`` only to addresses on the public internet (a server shared by merchants you do not trust)."""
    value = (os.environ if env is None else env).get("PALIER_WEBHOOK_NETWORKS", "").strip().lower() or "any"
    if value not in ("any", "public"):
        raise InvalidInput(
            "invalid_setting",
            f"PALIER_WEBHOOK_NETWORKS must be any or public, not {value!r}.",
            field="PALIER_WEBHOOK_NETWORKS",
        )
    return value == "public"


@dataclass(frozen=True)
class Limit:
    count: int
    seconds: float

    @classmethod
    def parse(cls, text: str, *, name: str) -> Limit | None:
        """``"30/60"`` -> 30 calls per 60 s; ``"off"`` -> None (no limit)."""
        text = text.strip().lower()
        if text == "off":
            return None
        count, _, seconds = text.partition("/")
        try:
            limit = cls(int(count), float(seconds))
        except ValueError:
            limit = cls(0, 0)
        if limit.count < 1 or not 0 < limit.seconds < math.inf:
            raise InvalidInput(
                "invalid_setting", f"{name} must be COUNT/SECONDS (e.g. 30/60) or off, not {text!r}.", field=name
            )
        return limit


@dataclass(frozen=True)
class RateLimits:
    """The limit of each kind of call; None turns that kind off."""

    redeem: Limit | None = Limit(30, 60)  # per program and member: a till redeems a few at a time
    lookup: Limit | None = Limit(600, 60)  # per API key: a busy till looks members up every few seconds
    sign_in: Limit | None = Limit(10, 300)  # per client address and identity (e-mail)
    # per client address, whoever the codes are for: a guesser asking codes for many members and trying 5 of
    # each; a household or a carrier's shared address signs in a few members, each with a try or two
    sign_in_code: Limit | None = Limit(60, 300)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> RateLimits:
        """``PALIER_RATE_LIMITS=off`` turns every limit off; ``PALIER_RATE_LIMIT_<KIND>`` sets one."""
        env = dict(os.environ) if env is None else env
        if env.get("PALIER_RATE_LIMITS", "").strip().lower() == "off":
            return cls(redeem=None, lookup=None, sign_in=None, sign_in_code=None)
        found = {}
        for kind in ("redeem", "lookup", "sign_in", "sign_in_code"):
            name = f"PALIER_RATE_LIMIT_{kind.upper()}"
            if env.get(name, "").strip():
                found[kind] = Limit.parse(env[name], name=name)
        return cls(**found)


@dataclass(frozen=True)
class Settings:
    database_url: str
    card_hash_key: bytes
    secret_key: str = field(default_factory=_secret_key, repr=False)  # signs web sessions and sign-in links
    show_sign_in_codes: bool = False  # the demo: print members' one-time sign-in codes (there is no mailer)
    public_url: str | None = None  # where members reach the portal; None: the address the API was called at
    rate_limits: RateLimits = field(default_factory=RateLimits.from_env)
    public_webhooks_only: bool = field(default_factory=public_webhooks_from_env)  # PALIER_WEBHOOK_NETWORKS=public

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings() -> Settings:
    """``PALIER_DATABASE_URL`` (default ``sqlite:///palier.db``), ``PALIER_CARD_KEY``, ``PALIER_SECRET_KEY``.

    ``PALIER_CARD_KEY`` keys the HMAC under which payment cards are stored; production must set it.
    ``PALIER_SECRET_KEY`` signs web sessions, CSRF tokens and member sign-in links; production must set it.
    ``PALIER_SHOW_SIGN_IN_CODES=1`` (the demo) logs members' one-time portal codes to the console.
    ``PALIER_PUBLIC_URL`` (e.g. ``https://loyalty.example.com``) is where members reach the portal: the
    portal links the API makes start with it, even when the shop's server calls the API at an inner address.
    ``PALIER_RATE_LIMIT_REDEEM`` / ``_LOOKUP`` / ``_SIGN_IN`` / ``_SIGN_IN_CODE`` (``COUNT/SECONDS`` or ``off``) and
    ``PALIER_RATE_LIMITS=off`` (all of them): see :class:`RateLimits`.
    ``PALIER_WEBHOOK_NETWORKS=public`` sends webhooks only to addresses on the public internet.
    """
    database_url = os.environ.get("PALIER_DATABASE_URL", "sqlite:///palier.db")
    return Settings(
        database_url=database_url,
        card_hash_key=card_key(os.environ.get("PALIER_CARD_KEY", ""), database_url=database_url),
        show_sign_in_codes=os.environ.get("PALIER_SHOW_SIGN_IN_CODES", "") == "1",
        public_url=public_url(os.environ.get("PALIER_PUBLIC_URL", "")),
    )


def card_key(value: str, *, database_url: str) -> bytes:
    """The key of the HMAC payment cards are stored under. Without ``PALIER_CARD_KEY`` it is the demo's, which is
    printed in this file: fine for trying Palier on SQLite, never for a PostgreSQL database, which is
    production — anyone holding the database could then find every card number from its last four digits.
    A key set by hand must be long enough not to be guessed either (``openssl rand -hex 32``)."""
    if not value.strip():  # (a key is used as it is set: stripping one would change every stored card's hash)
        if not database_url.startswith(("postgresql:", "postgresql+", "postgres:")):  # SQLite (or a typo, said later)
            return DEMO_CARD_KEY.encode()
        raise InvalidInput(
            "invalid_setting",
            "PALIER_CARD_KEY is not set: payment cards would be stored under the demo's key, which anyone can "
            "read. Set it once to a secret of your own (openssl rand -hex 32) and keep it: card lookups depend on it.",
            field="PALIER_CARD_KEY",
        )
    if len(value) < MIN_CARD_KEY:
        raise InvalidInput(
            "invalid_setting",
            f"PALIER_CARD_KEY has {len(value)} characters: at least {MIN_CARD_KEY} are needed, or the card numbers "
            "can be found from their hashes (openssl rand -hex 32 makes one).",
            field="PALIER_CARD_KEY",
        )
    return value.encode()


def public_url(value: str) -> str | None:
    """``value`` as a base address without a trailing slash; None when empty. Anything but an http(s)
    address without query or fragment is refused, so a typo fails at start-up, not in a member's inbox."""
    url = value.strip().rstrip("/")
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise InvalidInput(
            "invalid_setting",
            f"PALIER_PUBLIC_URL must be an address such as https://loyalty.example.com, not {value!r}.",
            field="PALIER_PUBLIC_URL",
        )
    return url
