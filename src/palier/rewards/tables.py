"""Rewards: the catalog, the coupons members redeem them for, and payments made with points or credit."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Index, Integer, String, Table, Text, text

from palier.db.metadata import Json, Timestamp, metadata

rewards = Table(
    "rewards",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # amount_off, percent_off, free_product, free_shipping, gift, …
    Column("status", String(12), nullable=False),  # active | archived
    Column("cost_points", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=True),  # minor units: amount_off, store_credit
    Column("percent", Integer, nullable=True),  # percent_off
    Column("max_discount", BigInteger, nullable=True),  # percent_off cap, minor units
    Column("min_order", BigInteger, nullable=True),  # the cart must reach this (minor units)
    Column("sku", Text, nullable=True),  # free_product
    Column("title", Json, nullable=False),  # {"fr": …, "en": …}
    Column("description", Json, nullable=True),
    Column("image_url", Text, nullable=True),
    Column("starts_at", Timestamp, nullable=True),
    Column("ends_at", Timestamp, nullable=True),
    Column("stock", BigInteger, nullable=True),  # NULL: unlimited
    Column("stock_used", BigInteger, nullable=False, server_default="0"),  # coupons not cancelled or expired
    Column("member_limit", Integer, nullable=True),  # per member per period, NULL: no limit
    Column("limit_period", String(8), nullable=True),  # day | week | month | year | ever
    Column("channels", Json, nullable=True),  # NULL: every channel
    Column("eligibility", Json, nullable=True),  # {"tiers": [...], "segments": [...]}
    Column("valid_days", Integer, nullable=False),  # a coupon's life
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    CheckConstraint("stock IS NULL OR stock_used <= stock", name="stock_not_exceeded"),
    CheckConstraint("stock_used >= 0", name="stock_used_not_negative"),
    Index(None, "program_id", "status"),
)

# A coupon is what a redemption gives the member: a code to use at checkout or the till. Redeemed ones
# keep their points in a hold until used (capture) or cancelled / expired (void). Granted ones (a gift
# from a rule or a job) cost nothing and have no hold. A coupon keeps the terms of its reward as they were
# when it was issued (value, minimum order, channels, product; its validity is ``expires_at``): the points
# paid for those, and a reward edited since gives its new terms to new coupons only.
coupons = Table(
    "coupons",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("member_id", String(32), nullable=False),
    Column("reward_id", String(32), ForeignKey("rewards.id"), nullable=False),
    Column("code", String(16), nullable=False, unique=True),
    Column("state", String(12), nullable=False),  # issued, used, expired, cancelled
    Column("points", BigInteger, nullable=False),
    Column("hold_id", String(32), nullable=True),
    Column("source", String(12), nullable=False),  # redeem | grant
    Column("source_ref", Text, nullable=True),  # a grant's unique reference (a rule's award, a birthday…)
    Column("issued_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=True),
    Column("used_at", Timestamp, nullable=True),
    Column("order_id", Text, nullable=True),
    Column("channel", String(12), nullable=True),
    Column("store_id", Text, nullable=True),
    Column("discount", BigInteger, nullable=True),  # minor units taken off the order it was used on
    Column("closed_at", Timestamp, nullable=True),
    Column("amount", BigInteger, nullable=True),  # the reward's terms at issue: amount_off, store_credit
    Column("percent", Integer, nullable=True),  # percent_off
    Column("max_discount", BigInteger, nullable=True),  # percent_off cap
    Column("min_order", BigInteger, nullable=True),
    Column("sku", Text, nullable=True),  # free_product
    Column("channels", Json, nullable=True),  # NULL: every channel
    Column("title", Json, nullable=True),  # the reward's title at issue, {"fr": …, "en": …} (always set)
    Index(None, "program_id", "member_id", "state"),
    Index(None, "program_id", "member_id", "reward_id", "issued_at"),
    Index("ix_coupons_due_to_expire", "state", "expires_at"),
    Index("ix_coupons_grant", "program_id", "source_ref", unique=True),
)

# Part of an order paid with points (burnt at checkout) or with store credit from the member's wallet.
# Points are never earned on that part; returning the order gives the points back in proportion.
order_payments = Table(
    "order_payments",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("member_id", String(32), nullable=False),
    Column("order_id", Text, nullable=False),
    Column("kind", String(8), nullable=False),  # points | credit
    Column("state", String(12), nullable=False),  # paid | cancelled
    Column("order_total", BigInteger, nullable=False),  # minor units
    Column("amount", BigInteger, nullable=False),  # minor units taken off the order
    Column("points", BigInteger, nullable=False),  # points burnt (0 for credit)
    Column("points_returned", BigInteger, nullable=False, server_default="0"),
    Column("amount_returned", BigInteger, nullable=False, server_default="0"),
    Column("transaction_id", String(32), ForeignKey("ledger_transactions.id"), nullable=False),
    Column("channel", String(12), nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("closed_at", Timestamp, nullable=True),
    # one live payment per order and kind; a cancelled one does not stop paying again
    Index(
        "ix_order_payments_order",
        "program_id",
        "order_id",
        "kind",
        unique=True,
        postgresql_where=text("state = 'paid'"),
        sqlite_where=text("state = 'paid'"),
    ),
    Index(None, "program_id", "member_id"),
)
