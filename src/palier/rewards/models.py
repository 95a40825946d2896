"""Rewards, coupons and payments with points, as the API and CLI see them. Money is in minor units."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from palier.activity.models import Line, MemberId, Money, check_order_total
from palier.clock import Moment
from palier.errors import FieldError
from palier.members.models import Channel
from palier.programs.models import refuse_null
from palier.text import PlainText, Reference
from palier.units import Whole

RewardKind = Literal["amount_off", "percent_off", "free_product", "free_shipping", "gift", "store_credit"]
Period = Literal["day", "week", "month", "year", "ever"]
CouponState = Literal["issued", "used", "expired", "cancelled"]
CLOSED_STATES: tuple[CouponState, ...] = ("used", "expired", "cancelled")  # a coupon that can no longer be used
PaymentKind = Literal["points", "credit"]

# What each kind of reward needs, and what it must not have.
NEEDS: dict[str, tuple[str, ...]] = {
    "amount_off": ("amount",),
    "percent_off": ("percent",),
    "free_product": ("sku",),
    "free_shipping": (),
    "gift": (),
    "store_credit": ("amount",),
}
KIND_FIELDS = ("amount", "percent", "max_discount", "sku")
ALLOWED: dict[str, tuple[str, ...]] = {**NEEDS, "percent_off": ("percent", "max_discount")}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Localized(Strict):
    fr: Annotated[PlainText, Field(min_length=1, max_length=200)]
    en: Annotated[PlainText, Field(min_length=1, max_length=200)]


class LocalizedLong(Strict):
    fr: Annotated[PlainText, Field(max_length=2000)] = ""
    en: Annotated[PlainText, Field(max_length=2000)] = ""


class MemberLimit(Strict):
    count: Whole = Field(ge=1, le=1000, description="redemptions allowed …")
    period: Period = Field(description="… per day, week, month or year (program time zone), or ever")


class Eligibility(Strict):
    """Who may redeem: members of any of these tiers, segments or VIP plans (all empty: everyone)."""

    tiers: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(default_factory=list, max_length=20)
    segments: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(default_factory=list, max_length=20)
    plans: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=list, max_length=20, description="VIP plans whose members may redeem it"
    )


def _with_offset(value: datetime | None) -> datetime | None:
    """A reward's window is sent with its offset, on create and on change alike."""
    if value is not None and value.tzinfo is None:
        raise ValueError("offset_required: give a time zone (e.g. 2026-12-01T00:00:00+01:00 or …Z)")
    return value


class RewardIn(Strict):
    kind: RewardKind
    cost_points: Whole = Field(ge=1, le=100_000_000)
    title: Localized
    description: LocalizedLong | None = None
    amount: Annotated[Whole, Field(ge=1, le=10**9)] | None = Field(
        default=None, description="amount_off: taken off the order; store_credit: put in the wallet (minor units)"
    )
    percent: Annotated[Whole, Field(ge=1, le=100)] | None = Field(default=None, description="percent_off")
    max_discount: Annotated[Whole, Field(ge=1, le=10**9)] | None = Field(default=None, description="percent_off cap")
    sku: Annotated[Reference, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="free_product"
    )
    min_order: Annotated[Whole, Field(ge=1, le=10**11)] | None = Field(
        default=None, description="the cart must reach this amount for the coupon to apply"
    )
    image_url: Annotated[str, Field(max_length=500, pattern=r"^https?://\S+$")] | None = None
    starts_at: Moment | None = None
    ends_at: Moment | None = None
    stock: Annotated[Whole, Field(ge=0, le=10**9)] | None = Field(default=None, description="null: unlimited")
    limit_per_member: MemberLimit | None = None
    channels: list[Channel] | None = Field(default=None, min_length=1, description="null: every channel")
    eligibility: Eligibility | None = None
    valid_days: Whole = Field(default=30, ge=1, le=3650, description="how long a coupon can be used")

    _aware = field_validator("starts_at", "ends_at")(lambda value: _with_offset(value))

    @model_validator(mode="after")
    def _fits_kind(self) -> RewardIn:
        article = "an" if self.kind[0] in "aeiou" else "a"
        for name in NEEDS[self.kind]:
            if getattr(self, name) is None:
                raise FieldError(name, f"{name}_required", f"{article} {self.kind} reward needs {name}")
        for name in KIND_FIELDS:
            if getattr(self, name) is not None and name not in ALLOWED[self.kind]:
                raise FieldError(name, f"{name}_not_applicable", f"{article} {self.kind} reward has no {name}")
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise FieldError("ends_at", "ends_before_start", "ends_at must be after starts_at")
        if self.channels is not None:
            self.channels = sorted(set(self.channels))
        return self


class RewardUpdate(Strict):
    """Fields sent replace the reward's; the others stay. ``status: archived`` takes it out of the catalog."""

    status: Literal["active", "archived"] | None = None
    cost_points: Whole | None = Field(default=None, ge=1, le=100_000_000)
    title: Localized | None = None
    description: LocalizedLong | None = None
    amount: Annotated[Whole, Field(ge=1, le=10**9)] | None = None
    percent: Annotated[Whole, Field(ge=1, le=100)] | None = None
    max_discount: Annotated[Whole, Field(ge=1, le=10**9)] | None = None
    sku: Annotated[Reference, Field(min_length=1, max_length=64)] | None = None
    min_order: Annotated[Whole, Field(ge=1, le=10**11)] | None = None
    image_url: Annotated[str, Field(max_length=500, pattern=r"^https?://\S+$")] | None = None
    starts_at: Moment | None = None
    ends_at: Moment | None = None
    stock: Annotated[Whole, Field(ge=0, le=10**9)] | None = None
    limit_per_member: MemberLimit | None = None
    channels: list[Channel] | None = Field(default=None, min_length=1)
    eligibility: Eligibility | None = None
    valid_days: Whole | None = Field(default=None, ge=1, le=3650)

    _aware = field_validator("starts_at", "ends_at")(lambda value: _with_offset(value))
    # these always have a value: null cannot clear them (it clears stock, ends_at… to "none")
    _no_null = field_validator("status", "cost_points", "title", "valid_days", mode="before")(refuse_null)

    def changes(self) -> dict[str, Any]:
        """What was sent (``null`` clears an optional field such as stock or ends_at)."""
        return self.model_dump(exclude_unset=True)


class Reward(RewardIn):
    model_config = ConfigDict(extra="forbid")

    id: str
    status: Literal["active", "archived"]
    stock_left: int | None = Field(description="null: unlimited")
    created_at: datetime
    updated_at: datetime


class CatalogItem(BaseModel):
    """A reward as one member sees it: can they redeem it now, and if not, why."""

    reward: Reward
    title: str = Field(description="in the member's language")
    points_needed: int = Field(description="points still to earn before it is affordable (0: affordable now)")
    redeemable: bool
    blocked_by: str | None = Field(
        default=None, description="why it cannot be redeemed now: insufficient_points, out_of_stock, limit_reached…"
    )
    message: str = Field(description="e.g. '40 points to a free coffee', in the member's language")


class RedeemIn(Strict):
    reward_id: str = Field(min_length=1, max_length=32)
    channel: Channel | None = Field(
        default=None,
        description="where the member asks; any channel may redeem: a reward's `channels` limit where its coupon "
        "is used, not where it is redeemed",
    )


class Coupon(BaseModel):
    id: str
    code: str = Field(description="what the member shows or types at checkout; the last character is a check")
    member_id: str
    reward_id: str
    kind: RewardKind
    title: Localized = Field(description="the reward's title when the coupon was issued (a retitled reward keeps it)")
    state: CouponState
    points: int = Field(description="points the coupon cost (0 for a gift)")
    source: Literal["redeem", "grant"]
    issued_at: datetime
    expires_at: datetime | None
    used_at: datetime | None = None
    order_id: str | None = None
    channel: str | None = None
    store_id: str | None = None
    discount: int | None = Field(default=None, description="minor units taken off the order it was used on")
    closed_at: datetime | None = None
    hold_id: str | None = Field(default=None, description="the ledger hold keeping its points until used")
    # the reward's terms when the coupon was issued: they are what its points paid for, and stay its own
    # whatever happens to the reward afterwards (its validity is ``expires_at``)
    amount: int | None = Field(default=None, description="amount_off: taken off the order; store_credit: credited")
    percent: int | None = Field(default=None, description="percent_off")
    max_discount: int | None = Field(default=None, description="percent_off cap")
    min_order: int | None = Field(default=None, description="the order must reach this for the coupon to apply")
    sku: str | None = Field(default=None, description="free_product: the product it gives")
    channels: list[str] | None = Field(default=None, description="where it can be used (null: every channel)")


class CouponPage(BaseModel):
    items: list[Coupon]
    next_cursor: str | None = Field(description="pass as `cursor` for older coupons; null on the last page")


class Redemption(BaseModel):
    coupon: Coupon
    available: int = Field(description="the member's available points after the redemption")
    held: int
    wallet: int | None = Field(default=None, description="store credit after the redemption (store_credit)")


class Cart(Strict):
    """The order a coupon is checked against (all optional: without a cart, only the coupon is checked)."""

    order_total: Money | None = Field(default=None, description="what the order costs before this coupon")
    shipping: Money | None = None
    lines: list[Line] | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _not_too_large(self) -> Cart:
        """Lines adding up past what one order may cost are a typo, as on a purchase (``order_too_large``)."""
        if self.lines:
            check_order_total(self.lines, self.shipping or 0, 0)
        return self


class CouponCheck(Cart):
    channel: Channel
    member_id: MemberId | None = Field(default=None, description="the member at the till, to refuse others' coupons")
    store_id: Annotated[Reference, Field(max_length=64)] | None = None


class CouponUse(CouponCheck):
    order_id: Annotated[Reference, Field(min_length=1, max_length=64)]


class CouponCancel(Strict):
    reason: Annotated[PlainText, Field(max_length=200)] | None = None


class CouponValidity(BaseModel):
    valid: Literal[True] = True
    coupon: Coupon
    discount: int | None = Field(description="minor units this coupon takes off the cart (null: no cart given)")
    describes: str = Field(description="what the till shows, e.g. '€5.00 off' or 'Free: SKU-COFFEE'")


class PaymentIn(Strict):
    """Pay part of an order with points (``points``) or with store credit (``amount``)."""

    kind: PaymentKind
    order_id: Annotated[Reference, Field(min_length=1, max_length=64)]
    order_total: Whole = Field(ge=1, le=10**11, description="the order's total before this payment, minor units")
    points: Whole | None = Field(default=None, ge=1, le=100_000_000, description="kind points: points to burn")
    amount: Whole | None = Field(default=None, ge=1, le=10**11, description="kind credit: credit to spend")
    channel: Channel | None = None

    @model_validator(mode="after")
    def _one_means(self) -> PaymentIn:
        wanted, other = ("points", "amount") if self.kind == "points" else ("amount", "points")
        if getattr(self, other) is not None:
            raise FieldError(other, f"{other}_not_applicable", f"a {self.kind} payment gives {wanted}, not {other}")
        if getattr(self, wanted) is None:
            raise FieldError(wanted, f"{wanted}_required", f"a {self.kind} payment gives {wanted}")
        return self


class Payment(BaseModel):
    id: str
    member_id: str
    order_id: str
    kind: PaymentKind
    state: Literal["paid", "cancelled"]
    order_total: int
    amount: int = Field(description="minor units taken off the order")
    points: int = Field(description="points burnt (0 for credit)")
    points_returned: int = 0
    amount_returned: int = 0
    transaction_id: str
    created_at: datetime
    closed_at: datetime | None = None
    available: int | None = Field(default=None, description="the member's available points after this payment")
    wallet: int | None = Field(default=None, description="the member's store credit after this payment")


class Wallet(BaseModel):
    member_id: str
    currency: str
    balance: int = Field(description="store credit, minor units")
