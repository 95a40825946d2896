"""Sign-ins to the member portal: one row per signed link or one-time code, each usable once."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table

from palier.db.metadata import Timestamp, metadata

# kind: link (issued by the merchant's site through the API) | code (six digits sent by e-mail).
# secret_hash: HMAC-SHA256 of the link's nonce or of the code under PALIER_SECRET_KEY; never the secret.
# member_id: none for a code asked for an e-mail that is no member's (or too often): stored all the same, with
# the hash of a code no one is told, so that asking and trying take the same time whoever asks.
portal_sign_ins = Table(
    "portal_sign_ins",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("member_id", String(32), ForeignKey("members.id"), nullable=True),
    Column("kind", String(8), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    Column("used_at", Timestamp, nullable=True),
    Index(None, "program_id", "member_id", "created_at"),
)
