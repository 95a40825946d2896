"""The outbox as the merchant's systems read it: domain events waiting for the mailer or webhook sender."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

EventType = Literal[
    "tier_placed",  # a new member starts in the first tier: not an upgrade to congratulate
    "tier_upgraded",
    "tier_downgraded",
    "membership_started",
    "membership_renewed",
    "membership_cancelled",
    "membership_lapsed",
    "membership_refunded",  # a fee was refunded: the period it paid for is taken back (or was over)
    "segment_entered",
    "segment_left",
    "portal_sign_in_code",  # a member asked for a one-time code: the merchant's mailer sends it
    "points_expiring",  # a member's points expire soon: the merchant's mailer warns them
    "member_erased",  # a member was erased at their request: the merchant's systems erase them too
    "member_enrolled",  # a member joined: the welcome mail (with the welcome points, if the program gives some)
    "points_earned",  # a purchase credited the member (pending through the return window, or available at once)
    "points_returned",  # a return took back points its goods earned
    "points_adjusted",  # a manual credit or debit, with its reason
    "member_merged",  # a duplicate account was closed into the member: the merchant's CRM merges them too
    "reward_redeemed",  # a member spent points on a reward: the coupon's code (or the store credit) to mail them
    "coupon_granted",  # a coupon given, not bought (a rule's award, a birthday gift, a plan's benefit)
    "coupon_used",  # a coupon was used on an order
    "coupon_cancelled",  # a coupon was given back: its points came back
    "coupon_expired",  # a coupon expired unused: its points came back
    "points_spent",  # points paid for part of an order at checkout (pay with points)
    "credit_spent",  # store credit paid for part of an order
    "payment_refunded",  # a cancelled checkout or a return gave points or store credit of a payment back
]


class OutboxEvent(BaseModel):
    id: str = Field(description="ids sort in the order the events were written")
    type: EventType
    subject_id: str | None = Field(description="usually the member")
    payload: dict[str, Any]
    created_at: datetime


class OutboxPage(BaseModel):
    items: list[OutboxEvent] = Field(description="events not yet acknowledged, oldest first")
    more: bool = Field(description="true: more are waiting; acknowledge these and ask again")


class Acknowledge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[str] = Field(min_length=1, max_length=500, description="events handled: they are not served again")


class Acknowledged(BaseModel):
    acknowledged: int = Field(description="events marked delivered now (those acknowledged before are not counted)")
