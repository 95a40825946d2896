"""Members, their identities, balances and history, as the API and CLI see them."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from palier.members.identities import IdentityKind
from palier.text import PlainText, no_card_number

MEMBER_ID = r"^mem_[0-9A-Z]{26}$"
Channel = Literal["web", "store", "phone", "app", "partner"]
Language = Literal["fr", "en"]


def _person_name(value: str) -> str:
    no_card_number(value)
    if re.search(r"[\x00-\x1f\x7f]", value):
        raise ValueError("control characters are not allowed in a name")
    return value


PersonName = Annotated[str, Field(min_length=1, max_length=80), AfterValidator(_person_name)]


def _birthday(value: date) -> date:
    # a day of slack: it is already tomorrow somewhere
    if value > date.today() + timedelta(days=1):
        raise ValueError("birthday_in_future: a birthday cannot be in the future")
    if value.year < 1900:
        raise ValueError("invalid_birthday: a birthday is after 1900")
    return value


Birthday = Annotated[date, AfterValidator(_birthday)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Consents(Strict):
    email_marketing: bool = False
    sms_marketing: bool = False
    push: bool = False
    profiling: bool = False


class ConsentsUpdate(Strict):
    """Only the consents sent change; the others stay as they were."""

    email_marketing: bool | None = None
    sms_marketing: bool | None = None
    push: bool | None = None
    profiling: bool | None = None


class IdentityIn(Strict):
    kind: IdentityKind
    value: str = Field(
        min_length=1, max_length=254, description="for payment_card: the number (only its keyed hash is kept)"
    )


class Identity(BaseModel):
    id: str
    kind: IdentityKind
    value: str = Field(description="for payment cards, brand and last four digits only")
    created_at: datetime


class MemberCreate(Strict):
    first_name: PersonName | None = None
    last_name: PersonName | None = None
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=32)
    birthday: Birthday | None = None
    language: Language = "fr"
    consents: Consents = Field(default_factory=Consents)
    identities: list[IdentityIn] = Field(default_factory=list, max_length=20)
    channel: Channel = "web"
    invitation_code: str | None = Field(
        default=None, min_length=1, max_length=40, description="needed when the program is invite-only"
    )


class MemberUpdate(Strict):
    first_name: PersonName | None = None
    last_name: PersonName | None = None
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=32)
    birthday: Birthday | None = None
    language: Language | None = None
    consents: ConsentsUpdate | None = None

    @field_validator("language", "consents", mode="before")
    @classmethod
    def _no_null(cls, value: object, info: ValidationInfo) -> object:
        if value is None:
            raise ValueError(f"null_not_allowed: {info.field_name} cannot be null; leave it out to keep it")
        return value


class Member(BaseModel):
    id: str
    status: Literal["active", "merged", "erased"]
    merged_into_id: str | None = None
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    birthday: date | None
    language: Language
    consents: Consents
    enrolled_at: datetime
    enrolment_channel: Channel
    identities: list[Identity]


class Expiry(BaseModel):
    points: int
    expires_at: datetime


class Maturity(BaseModel):
    points: int
    matures_at: datetime


class NextReward(BaseModel):
    """A reward within reach: "40 points to a free coffee"."""

    reward_id: str
    title: str = Field(description="in the member's language")
    cost_points: int
    points_needed: int = Field(description="0: affordable now")
    message: str


class Balance(BaseModel):
    member_id: str
    points_name: str
    available: int = Field(description="spendable now")
    pending: int = Field(description="earned, spendable once the return window closes")
    held: int = Field(description="reserved by redemptions not yet used")
    debt: int = Field(description="points owed after returns of goods whose points were already spent")
    next_expiry: Expiry | None = Field(description="the soonest lot to expire and how many points it holds")
    next_maturity: Maturity | None = Field(default=None, description="the next pending points to become available")
    next_rewards: list[NextReward] = Field(
        default_factory=list,
        description="every reward the member is eligible for, with the points still needed, nearest first",
    )


class HistoryLine(BaseModel):
    id: str
    kind: str
    reason: str
    reason_code: str
    occurred_at: datetime
    booked_at: datetime
    available: int
    pending: int
    held: int
    debt: int
    event_id: str | None = None
    reverses_id: str | None = None
    title: str | None = Field(
        default=None, description="what happened, in the language asked for (as the portal says it)"
    )
    detail: str | None = Field(
        default=None, description="the order and store, reward or rule it concerns, in that language"
    )


class HistoryPage(BaseModel):
    items: list[HistoryLine]
    next_cursor: str | None


class MergeRequest(Strict):
    source_member_id: str = Field(pattern=MEMBER_ID, description="the duplicate account; it is closed")
    target_member_id: str = Field(pattern=MEMBER_ID, description="the account that remains")


class MergeResult(BaseModel):
    merge_id: str
    source_member_id: str
    target_member_id: str
    transaction_id: str | None
    moved: dict[str, int]
    lots_moved: int
    identities_moved: int
    debt_repaid: int = Field(default=0, description="points one account owed, repaid from the other's points")
    store_credit_moved: int = Field(default=0, description="the closed account's store credit, minor units")


class ErasureIn(Strict):
    reason: PlainText = Field(min_length=3, max_length=500, description="why: kept in the audit trail")
    forfeit_store_credit: bool = Field(
        default=False, description="true: store credit left is forfeited; false: an erasure with credit left is refused"
    )


class ErasureResult(BaseModel):
    member_id: str
    status: Literal["erased"]
    erased_at: datetime
    transaction_id: str | None = Field(description="the ledger transaction that took the points out")
    points_removed: int = Field(description="available and pending points taken out (to the adjusted account)")
    pending_points_removed: int
    debt_repaid: int = Field(description="points owed, repaid from the member's own points first")
    debt_written_off: int = Field(description="points still owed, written off")
    coupons_cancelled: int = Field(description="unused coupons cancelled (their held points came back first)")
    store_credit_forfeited: int = Field(description="minor units")
    memberships_lapsed: int
    identities_deleted: int
