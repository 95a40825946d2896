"""A program's rules as data: the document a marketer writes (YAML or JSON), validated field by field.

    RuleSetDocument
    ├── actions[]    behaviour action types (newsletter, review…) with points and a limit
    ├── campaigns[]  time windows with a total points budget and a per-member cap
    └── rules[]      on an event (purchase, action, enrolment, birthday, anniversary):
                     conditions (all must hold) -> one effect; priority and exclusivity for stacking

Unknown fields, negative multipliers, empty windows and unknown event types are refused here; what
needs the whole document (unknown campaign, duplicate ids, overlapping exclusive rules) is checked by
``document.check_document``. Nothing here is code: no expression is ever evaluated.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from palier.clock import Moment
from palier.text import PlainText, Reference, no_card_shaped_number
from palier.units import Whole

Ident = Annotated[
    str,
    Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="lower-case id: letters, digits, - _"),
    AfterValidator(no_card_shaped_number),  # kept in every version of the rules, shown on pages: never a card
]
EventType = Literal["purchase", "action", "enrolment", "birthday", "anniversary"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Channel = Literal["web", "store", "phone", "app", "partner"]
Label = Annotated[PlainText, Field(min_length=1, max_length=120)]
Points = Annotated[Whole, Field(ge=0, le=10_000_000)]
Money = Annotated[Whole, Field(ge=0, le=10**11)]
Names = Annotated[list[Annotated[Reference, Field(min_length=1, max_length=64)]], Field(min_length=1, max_length=500)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class Text(Strict):
    """A label in English and French (French falls back to English)."""

    en: Label
    fr: Label | None = None

    def in_language(self, language: str) -> str:
        return self.fr if language == "fr" and self.fr else self.en


class Limit(Strict):
    """At most ``count`` times ``per`` period in the program's time zone (``ever``: in the member's life)."""

    count: Whole = Field(ge=1, le=10_000)
    per: Literal["ever", "day", "week", "month"]


class Action(Strict):
    id: Ident
    name: Text
    points: Points
    limit: Limit | None = Field(default=None, description="none: no limit beyond the unique reference")


class Campaign(Strict):
    """A time window (in the program's time zone when no offset is given) with optional budget and caps."""

    id: Ident
    name: Text
    starts: Moment
    ends: Moment
    budget: Annotated[Whole, Field(ge=0, le=10**12)] | None = Field(
        default=None, description="total points the campaign may give, all members (a national chain's: billions)"
    )
    member_cap: Points | None = Field(default=None, description="points one member may get from it")

    @field_validator("ends", mode="before")
    @classmethod
    def _last_day_included(cls, value: object) -> object:
        # a day alone ("ends: 2026-11-29", as `dates` are written) is that day included: read as its midnight, the
        # campaign stopped a day early, and how-to-earn told "from 28 November to 28 November"
        if isinstance(value, str) and _DAY_ONLY.fullmatch(value.strip()):
            value = date.fromisoformat(value.strip())
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime.combine(value, _DAY_LAST[-1])
        return value

    @model_validator(mode="after")
    def _window(self) -> Campaign:
        if (self.starts.tzinfo is None) != (self.ends.tzinfo is None):
            raise ValueError("mixed_offsets: give starts and ends both with or both without a UTC offset")
        if self.ends <= self.starts:
            raise ValueError("empty_window: ends must be after starts")
        if not (self.starts.year >= 2000 and self.ends.year <= 2200):
            raise ValueError("out_of_range: campaigns run between the years 2000 and 2200")
        return self

    @property
    def until(self) -> datetime:
        """The first moment the campaign no longer runs: ``ends``, but an end written as a day's last minute or
        second (23:59, 23:59:59) means "to the end of that day", as marketers write it: it runs to midnight, so a
        sale at 23:59:30 or 23:59:59.5 is in the campaign (wall-clock, in the zone ``ends`` is written in)."""
        if self.ends.time() in _DAY_LAST:
            return datetime.combine(self.ends.date() + timedelta(days=1), time(0), tzinfo=self.ends.tzinfo)
        return self.ends


_DAY_LAST = (time(23, 59), time(23, 59, 59))  # how people write "to the end of the day"
_DAY_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


class DateRange(Strict):
    """Local dates, both included."""

    start: date
    end: date

    @model_validator(mode="after")
    def _not_empty(self) -> DateRange:
        if self.end < self.start:
            raise ValueError("empty_window: end is before start")
        return self


class HourRange(Strict):
    """Local times of day, from ``start`` (included) to ``end`` (excluded); ``end`` ``24:00`` (or ``00:00``, or
    the day's last minute or second, ``23:59``) is midnight at the end of the day, so ``22:00``–``24:00`` is the
    last two hours."""

    start: time
    end: time

    @field_validator("start", "end", mode="before")
    @classmethod
    def _local_time(cls, value: object) -> object:
        # Unquoted, YAML reads 22:00 as the number 1320, which pydantic took for seconds in UTC: 00:22+00:00, a
        # time no purchase's local time can be compared with. A local hour is written as text, without offset.
        if not isinstance(value, (str, time)):
            raise ValueError('invalid_time: write the time in quotes, as "22:00" (without them YAML reads a number)')
        return value

    @field_validator("start", "end")
    @classmethod
    def _without_offset(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError('invalid_time: a local time of day has no offset: "22:00", in the program\'s time zone')
        return value

    @field_validator("end", mode="before")
    @classmethod
    def _midnight(cls, value: object) -> object:
        return "00:00" if isinstance(value, str) and value.strip() in ("24:00", "24:00:00") else value

    @model_validator(mode="after")
    def _not_empty(self) -> HourRange:
        if self.end != time(0) and self.end <= self.start:
            raise ValueError("empty_window: end must be after start (split a window that crosses midnight)")
        return self

    def holds(self, moment: time) -> bool:
        """Whether the wall-clock time ``moment`` is in the window (an end at 23:59 or 23:59:59 runs to midnight,
        as a campaign's does: "to 23:59" takes in the last minute)."""
        return self.start <= moment and (self.end == time(0) or self.end in _DAY_LAST or moment < self.end)


class Conditions(Strict):
    """Everything given must hold. Lists match any of their values; line filters pick the lines that count."""

    channels: list[Channel] | None = Field(default=None, min_length=1)
    stores: Names | None = None
    skus: Names | None = Field(default=None, description="only lines with one of these SKUs count")
    categories: Names | None = None
    brands: Names | None = None
    min_spend: Money | None = Field(default=None, description="minor units, of the lines that count")
    max_spend: Money | None = None
    min_quantity: Whole | None = Field(default=None, ge=1, le=10_000)
    dates: DateRange | None = None
    weekdays: list[Weekday] | None = Field(default=None, min_length=1)
    hours: HourRange | None = None
    first_purchase: bool | None = None
    tiers: Names | None = None
    segments: Names | None = Field(default=None, description="the member is in any of these segments")
    attributes: dict[Annotated[str, Field(min_length=1, max_length=40)], PlainText] | None = Field(
        default=None, description="member attributes that must equal these values (language, enrolment_channel…)"
    )
    actions: list[Ident] | None = Field(default=None, min_length=1, description="action types (event: action)")

    @model_validator(mode="after")
    def _spend_range(self) -> Conditions:
        if self.min_spend is not None and self.max_spend is not None and self.max_spend < self.min_spend:
            raise ValueError("empty_window: max_spend is below min_spend")
        return self


# Purchase-only conditions: they read the cart.
PURCHASE_ONLY = ("stores", "skus", "categories", "brands", "min_spend", "max_spend", "min_quantity", "first_purchase")


class PointsPerAmount(Strict):
    """``points`` per ``per_amount`` minor units of the lines that count, with the program's rounding."""

    type: Literal["points_per_amount"]
    points: Whole = Field(ge=1, le=100_000)
    per_amount: Whole = Field(ge=1, le=100_000_000)


class FixedPoints(Strict):
    type: Literal["fixed"]
    points: Whole = Field(ge=1, le=10_000_000)


class Multiplier(Strict):
    """Multiplies the points earned per amount on the lines that count (×2 adds as much again)."""

    type: Literal["multiplier"]
    factor: Decimal = Field(gt=1, le=100, max_digits=6, decimal_places=3)


class PerItem(Strict):
    type: Literal["per_item"]
    points: Whole = Field(ge=1, le=100_000)


class SpendStep(Strict):
    """A reward coupon each time the member's running spend crosses another ``step`` (€10 every €100)."""

    type: Literal["spend_step"]
    step: Whole = Field(ge=1, le=10**11, description="minor units")
    reward_id: str = Field(min_length=1, max_length=64)
    max_per_purchase: Whole = Field(
        default=10,
        ge=1,
        le=100,
        description="coupons one purchase can bring at most; the steps beyond are counted as paid",
    )


class CashbackPercent(Strict):
    """Money back: ``percent`` of the lines that count (kept for the cashback work: recorded, not paid)."""

    type: Literal["cashback_percent"]
    percent: Decimal = Field(gt=0, le=100, max_digits=5, decimal_places=2)


Effect = Annotated[
    PointsPerAmount | FixedPoints | Multiplier | PerItem | SpendStep | CashbackPercent,
    Field(discriminator="type"),
]
EFFECT_TYPES = ("points_per_amount", "fixed", "multiplier", "per_item", "spend_step", "cashback_percent")
# What each event may do: only purchases have a cart to count; other events give fixed points.
EFFECTS_FOR: dict[str, tuple[str, ...]] = {
    "purchase": EFFECT_TYPES,
    "action": ("fixed", "multiplier"),
    "enrolment": ("fixed",),
    "birthday": ("fixed",),
    "anniversary": ("fixed",),
}


class Rule(Strict):
    id: Ident
    name: Text
    event: EventType
    conditions: Conditions = Field(default_factory=Conditions)
    effect: Effect
    priority: Whole = Field(default=0, ge=-1000, le=1000, description="higher first")
    exclusive: bool = Field(default=False, description="when it applies, no rule after it applies")
    campaign: Ident | None = Field(default=None, description="limits the rule to a campaign's window and budget")


class RuleSetDocument(Strict):
    """A program's whole rule set; applying it makes a new version."""

    actions: list[Action] = Field(default_factory=list, max_length=200)
    campaigns: list[Campaign] = Field(default_factory=list, max_length=200)
    rules: list[Rule] = Field(default_factory=list, max_length=500)


class RuleSetVersion(BaseModel):
    """One applied version: who applied it and when (it is in force for events from ``effective_from``)."""

    version: int
    actor: str
    created_at: datetime
    effective_from: datetime
    document: RuleSetDocument


class RuleSetVersionPage(BaseModel):
    items: list[RuleSetVersion] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as `cursor` for older versions; null on the last page")
