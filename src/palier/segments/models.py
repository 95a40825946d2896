"""Segments as the API and CLI see them: conditions over what members do, validated data, never code."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from palier.errors import FieldError
from palier.members.models import Channel, Language
from palier.rewards.models import Localized
from palier.units import Whole

# What a condition can look at, per member (money in minor units; shares in percent of orders).
NUMERIC_FIELDS = (
    "total_spend",
    "order_count",
    "days_since_last_purchase",
    "days_since_enrolment",
    "rfm_recency",  # 1 (long ago) … 5 (most recent); 0 without orders
    "rfm_frequency",
    "rfm_monetary",
    "rfm_score",  # the three added: 3 … 15
    "birthday_month",  # 1 … 12
    "web_share",
    "store_share",
    "app_share",
    "phone_share",
)
TEXT_FIELDS = ("tier", "language", "enrolment_channel")
STORED = "stored"  # validation context of a definition read back from the database, checked when it was saved
# the values a member can have, where they are known without the program (tier codes are the program's own)
CHOICES: dict[str, tuple[str | int, ...]] = {
    "birthday_month": tuple(range(1, 13)),
    "language": get_args(Language),
    "enrolment_channel": get_args(Channel),
}
# the figures whose values lie within a known range: beyond it, a condition matches no member (or every one)
BOUNDS: dict[str, tuple[int, int, str]] = {
    **{
        f"{channel}_share": (0, 100, "a percentage of the member's orders")
        for channel in ("web", "store", "app", "phone")
    },
    **{f"rfm_{part}": (0, 5, "1 to 5 among buyers, 0 without orders") for part in ("recency", "frequency", "monetary")},
    "rfm_score": (0, 15, "the three RFM scores added: 3 to 15, 0 without orders"),
}
Field_ = Literal[
    "total_spend",
    "order_count",
    "days_since_last_purchase",
    "days_since_enrolment",
    "rfm_recency",
    "rfm_frequency",
    "rfm_monetary",
    "rfm_score",
    "birthday_month",
    "web_share",
    "store_share",
    "app_share",
    "phone_share",
    "tier",
    "language",
    "enrolment_channel",
]
Op = Literal["=", "!=", "<", "<=", ">", ">=", "in", "not_in"]
Value = Whole | str | list[Whole] | list[str]
# Beyond these a value is a typo: a trillion minor units of spend, or a day count past any calendar.
MAX_VALUE = 10**12
MAX_TEXT = 100
SegmentCode = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Condition(Strict):
    field: Field_
    op: Op
    value: Value = Field(description="a whole number or text; a non-empty list of them for in and not_in")

    @field_validator("value", mode="before")
    @classmethod
    def _one_shape(cls, value: Any) -> Any:
        """A value of none of the shapes a condition takes is one error, said once (else one per shape tried)."""
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, bool):
                raise ValueError(f"invalid_type: {str(item).lower()} is not a number")
            if isinstance(item, float):  # even 10.0: money is in minor units, day counts are whole
                raise ValueError(
                    "invalid_type: a whole number is expected, without a decimal point (money in minor units: "
                    "12.50 is 1250)"
                )
            if not isinstance(item, int | str):
                raise ValueError("invalid_type: a whole number or text is expected, or a list of them for in, not_in")
        if isinstance(value, list) and len({isinstance(item, str) for item in value}) > 1:
            raise ValueError("invalid_type: a list holds whole numbers or texts, not both")
        return value

    @field_validator("value")
    @classmethod
    def _bounded(cls, value: Value) -> Value:
        values = value if isinstance(value, list) else [value]
        if len(values) > MAX_TEXT:
            raise ValueError(f"too_many_values: a list holds at most {MAX_TEXT} values")
        for v in values:
            if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_VALUE:
                raise ValueError(f"out_of_range: {v} is beyond ±{MAX_VALUE:,}, which no member can reach")
            if isinstance(v, str) and len(v) > MAX_TEXT:
                raise ValueError(f"invalid_length: a text value holds at most {MAX_TEXT} characters")
        return value

    @model_validator(mode="after")
    def _fits(self, info: ValidationInfo) -> Condition:
        listed = isinstance(self.value, list)
        if self.op in ("in", "not_in") and not (listed and self.value):
            raise FieldError("value", "list_required", f"{self.op} takes a non-empty list")
        if self.op not in ("in", "not_in") and listed:
            raise FieldError("value", "single_value_required", f"{self.op} takes one value, not a list")
        values = self.value if isinstance(self.value, list) else [self.value]
        numeric = self.field in NUMERIC_FIELDS
        if numeric and not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise FieldError("value", "number_required", f"{self.field} is compared with whole numbers")
        if not numeric and not all(isinstance(v, str) for v in values):
            raise FieldError("value", "text_required", f"{self.field} is compared with text")
        if not numeric and self.op in ("<", "<=", ">", ">="):
            raise FieldError("op", "op_not_applicable", f"{self.field} is compared with =, !=, in or not_in")
        stored = STORED in (info.context or {})  # stored ones load as they are
        bounds = None if stored else BOUNDS.get(self.field)
        if bounds is not None and any(not bounds[0] <= v <= bounds[1] for v in values):  # type: ignore[operator]
            low, high, what = bounds
            raise FieldError("value", "out_of_range", f"{self.field} is between {low} and {high} ({what})")
        choices = None if stored else CHOICES.get(self.field)
        if choices is not None and any(v not in choices for v in values):  # else it would never match anyone
            raise FieldError("value", "invalid_choice", f"{self.field} is one of: {', '.join(map(str, choices))}")
        return self


class SegmentIn(Strict):
    code: SegmentCode
    name: Localized
    kind: Literal["rules", "top_revenue"] = "rules"
    conditions: list[Condition] = Field(default_factory=list, max_length=30, description="all must hold")
    percent: Whole | None = Field(default=None, ge=1, le=100, description="top_revenue: the top X% of customers")

    @model_validator(mode="after")
    def _fits_kind(self) -> SegmentIn:
        if self.kind == "top_revenue" and self.percent is None:
            self.percent = 20
        if self.kind == "rules" and self.percent is not None:
            raise FieldError("percent", "percent_not_applicable", "percent is for kind top_revenue")
        if self.kind == "rules" and not self.conditions:
            raise FieldError("conditions", "conditions_required", "a rules segment needs at least one condition")
        return self


class Segment(SegmentIn):
    id: str
    members_count: int
    refreshed_at: datetime | None
    created_at: datetime


class Refreshed(BaseModel):
    segment: str
    members: int
    entered: int
    left: int
