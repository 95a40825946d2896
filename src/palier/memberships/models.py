"""Paid VIP plans, memberships, their payments, and invitations, as the API and CLI see them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from palier.clock import Moment
from palier.errors import FieldError
from palier.programs.models import refuse_null
from palier.rewards.models import Localized
from palier.text import Reference
from palier.units import Whole

Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Benefits(Strict):
    multiplier_percent: Whole = Field(default=100, ge=100, le=1000, description="150: points ×1.5 (the rules apply it)")
    period_rewards: list[Annotated[str, Field(max_length=32)]] = Field(
        default_factory=list, max_length=10, description="rewards given as a coupon at the start of every period"
    )
    perks: list[Localized] = Field(default_factory=list, max_length=20)


class PlanIn(Strict):
    code: Code
    name: Localized
    price: Whole = Field(ge=1, le=10**9, description="minor units per period; the merchant's checkout takes it")
    period: Literal["monthly", "yearly"]
    trial_days: Whole = Field(default=0, ge=0, le=365)
    benefits: Benefits = Field(default_factory=Benefits)
    access: Literal["open", "segment", "invitation"] = "open"
    segment: Code | None = Field(default=None, description="access segment: only its members may join")

    @model_validator(mode="after")
    def _access(self) -> PlanIn:
        if (self.access == "segment") != (self.segment is not None):
            raise FieldError("segment", "segment_required", "segment goes with (and only with) access segment")
        return self


class PlanUpdate(Strict):
    """Fields sent replace the plan's; the others stay. ``status: archived`` stops offering it: no new free
    trials and no longer on the how-it-works page, while the memberships already running renew as they are
    paid. The price and period are fixed: members are charged them at every renewal (see ``price_fixed``)."""

    name: Localized | None = None
    price: Whole | None = Field(default=None, description="only the plan's own price is accepted: it cannot change")
    period: Literal["monthly", "yearly"] | None = Field(default=None, description="likewise fixed")
    trial_days: Whole | None = Field(default=None, ge=0, le=365)
    benefits: Benefits | None = None
    access: Literal["open", "segment", "invitation"] | None = None
    segment: Code | None = None
    status: Literal["active", "archived"] | None = None

    _no_null = field_validator("name", "price", "period", "trial_days", "benefits", "access", "status", mode="before")(
        refuse_null
    )


class Plan(PlanIn):
    id: str
    status: Literal["active", "archived"]
    created_at: datetime


class JoinIn(Strict):
    """Start a free trial of a plan (the merchant's checkout records paid starts as payments)."""

    plan: Code
    invitation_code: Annotated[str, Field(min_length=1, max_length=40)] | None = None


class MembershipPaymentIn(Strict):
    """The merchant's checkout took a membership fee: start or renew the member's membership."""

    payment_id: Annotated[Reference, Field(min_length=1, max_length=64, description="unique per program")]
    member_id: Annotated[str, Field(pattern=r"^mem_[0-9A-Z]{26}$")]
    plan: Code
    amount: Whole = Field(ge=1, le=10**9, description="minor units; must be the plan's price")
    paid_at: Moment
    invitation_code: Annotated[str, Field(min_length=1, max_length=40)] | None = None


class RewardNotGiven(BaseModel):
    reward_id: str
    reason: Literal["period_ended", "out_of_stock", "reward_ended", "reward_not_started"] = Field(
        description="period_ended: the payment was for a period already over; out_of_stock: none left to give; "
        "reward_ended / reward_not_started: the reward is archived or outside the window it is on offer"
    )


class Membership(BaseModel):
    id: str
    member_id: str
    plan: str
    plan_name: Localized
    state: Literal["trial", "active", "cancelled", "lapsed"]
    started_at: datetime
    period_start: datetime
    period_end: datetime = Field(description="benefits last until then; a payment renews from there")
    cancelled_at: datetime | None = None
    ended_at: datetime | None = None
    benefits: Benefits
    period_rewards_not_given: list[RewardNotGiven] = Field(
        default_factory=list,
        description="in the answer to the payment or trial start: the plan's period rewards it gave no coupon for",
    )


class MembershipPaymentLine(BaseModel):
    """A fee the member paid for a plan, as the console lists it (newest first), refunded or not."""

    payment_id: str
    plan: str
    plan_name: Localized
    amount: int = Field(description="minor units")
    paid_at: datetime
    period_start: datetime
    period_end: datetime
    refunded_at: datetime | None = None
    time_taken_back: bool | None = None  # refunded: whether the time it paid for was taken back
    coupons_cancelled: list[str] = Field(default_factory=list)  # refunded: that period's unused coupons, cancelled


class MembershipRefundIn(Strict):
    """The merchant refunded a membership fee (a withdrawal within the legal period, a chargeback)."""

    note: Annotated[Reference, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description='why, for the audit trail ("withdrawal within 14 days")'
    )


class MembershipRefund(BaseModel):
    payment_id: str
    amount: int = Field(description="minor units: the fee refunded, whole")
    refunded_at: datetime
    time_taken_back: bool = Field(
        description="false: the period it paid for was over, so the membership is unchanged; true: that period "
        "is taken back (a running one ends now, one still to come is no longer paid for)"
    )
    coupons_cancelled: list[str] = Field(description="codes of that period's reward coupons, unused, now cancelled")
    coupons_used: list[str] = Field(description="codes of that period's reward coupons already used: kept")
    membership: Membership


class InvitationsIn(Strict):
    count: Whole = Field(default=1, ge=1, le=10_000)
    purpose: Literal["enrol", "plan"] = "enrol"
    plan: Code | None = Field(default=None, description="purpose plan: the plan it opens")
    expires_at: Moment | None = None
    note: Annotated[str, Field(max_length=200)] | None = None

    @model_validator(mode="after")
    def _plan(self) -> InvitationsIn:
        if (self.purpose == "plan") != (self.plan is not None):
            raise FieldError("plan", "plan_required", "plan goes with (and only with) purpose plan")
        return self


class Invitation(BaseModel):
    code: str
    purpose: str
    plan: str | None
    expires_at: datetime | None
    used_at: datetime | None = None
    used_by: str | None = None
