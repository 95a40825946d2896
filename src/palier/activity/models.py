"""Purchases, returns and adjustments as integrators send them. Money is in minor units (cents)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from palier.clock import Moment
from palier.errors import FieldError
from palier.members.identities import IdentityKind
from palier.text import PlainText, Reference
from palier.units import Whole

MAX_MONEY = 10**11  # one billion in major units: anything above is a typo, not a purchase
Money = Annotated[Whole, Field(ge=0, le=MAX_MONEY)]

MemberId = Annotated[str, Field(pattern=r"^mem_[0-9A-Z]{26}$", description="a member id such as mem_01J…")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class MemberRef(Strict):
    """Who bought: a member id, or any identity (a scanned loyalty card, a phone, the card they paid with)."""

    member_id: MemberId | None = None
    kind: IdentityKind | None = None
    value: str | None = Field(default=None, min_length=1, max_length=254)

    @model_validator(mode="after")
    def _one_way(self) -> MemberRef:
        if (self.member_id is None) == (self.kind is None or self.value is None):
            raise ValueError("give either member_id, or kind and value of an identity")
        return self


class Line(Strict):
    sku: Annotated[Reference, Field(min_length=1, max_length=64)]
    name: Annotated[PlainText, Field(max_length=120)] | None = None
    category: Annotated[PlainText, Field(max_length=64)] | None = None
    brand: Annotated[PlainText, Field(max_length=64)] | None = None
    quantity: Whole = Field(ge=1, le=10_000)
    unit_price: Money
    discount: Money = 0
    kind: Literal["product", "gift_card", "service"] = "product"

    @field_validator("discount")
    @classmethod
    def _discount_within_line(cls, discount: int, info: ValidationInfo) -> int:
        quantity, unit_price = info.data.get("quantity"), info.data.get("unit_price")
        if quantity is not None and unit_price is not None and discount > quantity * unit_price:
            raise ValueError("discount_exceeds_line: the discount is larger than quantity × unit_price")
        return discount

    @property
    def amount(self) -> int:
        return self.quantity * self.unit_price - self.discount


MAX_EARNED = 10**9  # points one purchase may earn: more is a price typed with too many zeros, or a rule's typo


def check_order_total(lines: list[Line], shipping: int, tax: int) -> None:
    """Refuse an order worth more than ``MAX_MONEY`` in all (lines after discounts, shipping and tax)."""
    total = sum(line.amount for line in lines) + shipping + tax
    if total > MAX_MONEY:
        raise FieldError(
            "lines",
            "order_too_large",
            f"the order's total is {total:,} minor units, above {MAX_MONEY:,}: check the prices (in minor units)",
        )


def check_points_earned(points: int) -> int:
    """Refuse a purchase that would earn more than ``MAX_EARNED`` points (before anything is kept)."""
    if points > MAX_EARNED:
        from palier.errors import Unprocessable

        raise Unprocessable(
            "points_too_large",
            f"This order would earn {points:,} points, more than the {MAX_EARNED:,} one purchase may earn: check "
            "its prices and the earning rules.",
            field="lines",
            points=points,
        )
    return points


class PurchaseIn(Strict):
    order_id: Annotated[Reference, Field(min_length=1, max_length=64, description="unique per program")]
    member: MemberRef | None = Field(
        default=None,
        description="who bought; leave it out for a shopper who is not a member: the purchase is kept "
        "(for the members vs non-members figures) and earns nothing",
    )
    channel: Literal["web", "store", "phone", "app", "partner"]
    store_id: Annotated[Reference, Field(max_length=64)] | None = None
    store_name: Annotated[PlainText, Field(max_length=80)] | None = None
    occurred_at: Moment
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    lines: list[Line] = Field(min_length=1, max_length=500)
    shipping: Money = 0
    tax: Money = 0

    @model_validator(mode="after")
    def _not_too_large(self) -> PurchaseIn:
        check_order_total(self.lines, self.shipping, self.tax)
        return self


class ReturnLine(Strict):
    sku: Annotated[Reference, Field(min_length=1, max_length=64)]
    quantity: Whole = Field(ge=1, le=10_000)
    line: Whole | None = Field(
        default=None,
        ge=0,
        le=499,
        description="the line's position in the order's lines, from 0: needed when the SKU is on several lines "
        "at different prices",
    )


class ReturnIn(Strict):
    return_id: Annotated[Reference, Field(min_length=1, max_length=64, description="unique per program")]
    order_id: Annotated[Reference, Field(min_length=1, max_length=64)]
    occurred_at: Moment
    lines: list[ReturnLine] | None = Field(default=None, min_length=1, max_length=500)
    amount: Annotated[Whole, Field(ge=1, le=MAX_MONEY)] | None = Field(
        default=None, description="a refund by amount, of the goods first: it takes back their share of the points"
    )
    shipping: Annotated[Whole, Field(ge=0, le=MAX_MONEY)] | None = Field(
        default=None,
        description="shipping refunded, alone or with lines or amount: takes back no points unless shipping earns; "
        "0 is none (as if left out)",
    )
    reason: Annotated[PlainText, Field(max_length=200)] | None = None

    @field_validator("shipping")
    @classmethod
    def _no_shipping(cls, shipping: int | None) -> int | None:
        """A shop that always sends the field sends 0 when no shipping comes back: the same as leaving it out."""
        return shipping or None

    @model_validator(mode="after")
    def _lines_or_amount(self) -> ReturnIn:
        if self.lines is not None and self.amount is not None:
            raise FieldError(
                "amount", "amount_not_applicable", "give either lines (returned items) or amount (a refund), not both"
            )
        if self.lines is None and self.amount is None and self.shipping is None:
            raise FieldError(
                "lines",
                "lines_or_amount_required",
                "give lines (returned items), amount (a refund) or shipping (its refund)",
            )
        return self


class AdjustmentIn(Strict):
    points: Whole = Field(ge=-10_000_000, le=10_000_000, description="positive credits, negative debits")
    reason: Annotated[PlainText, Field(min_length=3, max_length=200)]
    external_id: Annotated[Reference, Field(min_length=1, max_length=64)] | None = None

    @model_validator(mode="after")
    def _not_zero(self) -> AdjustmentIn:
        if self.points == 0:
            raise FieldError("points", "zero_points", "an adjustment of 0 points changes nothing")
        return self


class AwardLine(BaseModel):
    """What one earning rule gave: "Double points weekend ×2: +46"."""

    rule_id: str
    version: int = Field(description="the version of the rules that made this award")
    kind: Literal["points", "coupon", "cashback"]
    points: int
    text: str


class EventResult(BaseModel):
    """What the engine did with a fact. Sending the same fact again returns this, unchanged."""

    event_id: str
    type: Literal["purchase", "return", "adjustment", "action", "enrolment", "birthday", "anniversary"]
    external_id: str
    status: Literal["processed", "unclaimed", "anonymous"] = Field(
        description="processed; unclaimed: paid with a payment card nobody has linked yet; "
        "anonymous: a purchase by a shopper who is not a member (earns nothing)"
    )
    member_id: str | None
    points: int = Field(description="points earned (purchase) or taken back (return, negative), or adjusted")
    pending: bool = False
    matures_at: datetime | None = None
    transaction_id: str | None = None
    reason: str
    details: dict[str, int] = Field(default_factory=dict)
    awards: list[AwardLine] = Field(default_factory=list, description="what each earning rule gave, when rules apply")


class ReversalResult(EventResult):
    """What a reversal did: ``transaction_id`` is the transaction written, ``external_id`` the one it reverses.
    No fact from outside was received, so no event was stored and there is no ``event_id``."""

    event_id: SkipJsonSchema[None] = Field(default=None, exclude=True)  # type: ignore[assignment]
    type: Literal["adjustment"] = "adjustment"
    external_id: str = Field(description="the transaction reversed")
    transaction_id: str = Field(description="the reversal: the transaction written")
