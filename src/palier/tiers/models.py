"""Tier policies, statuses and progress as the API and CLI see them."""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from palier.clock import Moment
from palier.errors import FieldError
from palier.rewards.models import Localized
from palier.text import PlainText
from palier.units import Whole

Metric = Literal["points", "spend", "orders"]
Window = Literal["lifetime", "calendar_year", "rolling_months", "anniversary_year"]
Downgrade = Literal["never", "period_end", "grace"]
Step = Literal["one_level", "to_qualified"]
TierCode = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$", description="e.g. gold")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TierIn(Strict):
    code: TierCode
    name: Localized
    threshold: Whole = Field(ge=0, le=10**12, description="points, minor units of spend, or orders over the window")
    multiplier_percent: Whole = Field(default=100, ge=100, le=1000, description="150: points ×1.5 (the rules apply it)")
    perks: list[Localized] = Field(default_factory=list, max_length=20)


class TierPolicy(Strict):
    """How a program's members reach, keep and lose their tiers."""

    metric: Metric = Field(description="points earned on purchases (never the balance), qualifying spend, or orders")
    window: Window = "calendar_year"
    rolling_months: Whole | None = Field(default=None, ge=1, le=36, description="for window rolling_months")
    downgrade: Downgrade = "period_end"
    grace_months: Whole | None = Field(default=None, ge=1, le=24, description="for downgrade grace")
    downgrade_step: Step = "to_qualified"
    returns_downgrade: bool = Field(
        default=False, description="true: a return that undoes the crossing takes the tier back at once"
    )
    tiers: list[TierIn] = Field(min_length=1, max_length=20, description="lowest first")

    @model_validator(mode="after")
    def _consistent(self) -> TierPolicy:
        if (self.window == "rolling_months") != (self.rolling_months is not None):
            raise FieldError(
                "rolling_months",
                "rolling_months_required",
                "rolling_months goes with (and only with) window rolling_months",
            )
        if (self.downgrade == "grace") != (self.grace_months is not None):
            raise FieldError(
                "grace_months", "grace_months_required", "grace_months goes with (and only with) downgrade grace"
            )
        if self.window == "lifetime" and self.downgrade != "never":
            raise FieldError(
                "downgrade",
                "window_has_no_period",
                "a lifetime window never ends, so nobody requalifies; use downgrade never",
            )
        codes = [t.code for t in self.tiers]
        for index, code in enumerate(codes):
            if code in codes[:index]:
                raise FieldError(
                    f"tiers[{index}].code", "duplicate_tier_code", f"each tier needs its own code: {code!r} is taken"
                )
        for index, (lower, higher) in enumerate(zip(self.tiers, self.tiers[1:], strict=False), start=1):
            if higher.threshold <= lower.threshold:
                raise FieldError(
                    f"tiers[{index}].threshold",
                    "thresholds_not_increasing",
                    f"{higher.code} ({higher.threshold}) must need more than {lower.code} ({lower.threshold}); "
                    "list tiers lowest first",
                )
        return self

    @cached_property
    def _ranks(self) -> dict[str | None, int]:
        return {None: 0} | {t.code: i for i, t in enumerate(self.tiers, start=1)}

    def rank(self, code: str | None) -> int:
        """0 for no tier, 1 for the lowest, … A tier the policy no longer has (removed while a purchase that began
        under the one before reached it) ranks as none: the member is judged again on the tiers there are."""
        return self._ranks.get(code, 0)

    def qualified(self, value: int) -> str | None:
        """The highest tier whose threshold ``value`` reaches."""
        for tier in reversed(self.tiers):
            if value >= tier.threshold:
                return tier.code
        return None

    def tier(self, code: str | None) -> TierIn | None:
        return next((t for t in self.tiers if t.code == code), None)


class ManualTier(Strict):
    tier: TierCode | None = Field(description="the tier to give; null takes the tier away")
    reason: Annotated[PlainText, Field(min_length=3, max_length=200)]
    until: Moment = Field(description="kept until then whatever the metric says; then judged again")


class TierChange(BaseModel):
    from_tier: str | None
    to_tier: str | None
    reason: str
    at: datetime
    details: dict[str, object] | None = None


class TierProgress(BaseModel):
    member_id: str
    metric: Metric
    tier: str | None
    tier_name: str | None = Field(description="in the member's language")
    multiplier_percent: int
    perks: list[str]
    value: int = Field(description="the metric so far in the current window")
    window_start: datetime | None
    window_end: datetime | None = Field(description="when the window closes (null: lifetime)")
    next_tier: str | None
    next_tier_name: str | None
    needed_for_next: int | None = Field(description="what is left to reach the next tier before window_end")
    needed_to_keep: int | None = Field(description="what is left to keep the current tier at requalification")
    grace_until: datetime | None
    manual_until: datetime | None
    message: str = Field(description="e.g. '€85.00 more before 31 December to reach Gold', in the member's language")
    history: list[TierChange]
