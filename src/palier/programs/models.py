"""Program settings and API keys as the API and CLI see them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from palier.programs.currencies import check_currency
from palier.text import PlainText
from palier.units import Rounding, Whole, money


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


# "eur" is EUR, as the CLI reads it; "EU" or "EURO" is refused
CurrencyCode = Annotated[str, BeforeValidator(_upper), Field(pattern=r"^[A-Z]{3}$"), AfterValidator(check_currency)]


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"invalid_timezone: unknown time zone {value!r} (use an IANA name such as Europe/Paris)"
        ) from None
    return value


TimeZoneName = Annotated[str, AfterValidator(_timezone)]
PointsName = Annotated[PlainText, Field(min_length=1, max_length=40)]
PointsNames = dict[Literal["fr", "en"], PointsName]


def refuse_null(value: object, info: ValidationInfo) -> object:
    """A ``mode="before"`` validator for updates: ``null`` cannot clear a setting that always has a value."""
    if value is None:
        raise ValueError(f"null_not_allowed: {info.field_name} cannot be null; leave it out to keep it")
    return value


def _country(value: str) -> str:
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"invalid_country: {value!r} is not a country code such as FR, BE or CH (ISO 3166)")
    return value


# Checked by _country alone, so that "ZZZ" is said to be no country code rather than "not in the expected form".
Country = Annotated[str, Field(json_schema_extra={"pattern": "^[A-Z]{2}$"}), AfterValidator(_country)]
Scope = Literal["admin", "pos", "read"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ProgramSettings(Strict):
    """Everything a merchant configures about the points economy of a program."""

    name: PlainText = Field(min_length=1, max_length=120)
    currency: CurrencyCode = "EUR"
    points_name: PointsName = "points"
    points_name_by_language: PointsNames = Field(
        default_factory=dict,
        description='the points\' name in a language where it is not points_name, e.g. {"en": "stars"} beside '
        '"points_name": "étoiles"; members, the portal and the console read the name of their language',
    )
    timezone: TimeZoneName = "Europe/Paris"
    default_country: Country = Field(default="FR", description="for phone numbers typed without +")
    earn_points: Whole = Field(default=1, ge=0, le=1000, description="points earned …")
    earn_per_amount: Whole = Field(default=100, ge=1, le=100_000_000, description="… per this many minor units")
    rounding: Rounding = Rounding.FLOOR
    return_window_days: Whole = Field(default=14, ge=0, le=365)
    points_lifetime_months: Whole | None = Field(default=12, ge=1, le=240, description="null: never expire")
    expiry_warning_days: Whole = Field(
        default=30, ge=0, le=365, description="warn members this many days before points expire (0: never)"
    )
    earn_on_shipping: bool = False
    earn_on_tax: bool = False
    earn_on_gift_cards: bool = False
    return_shortfall: Literal["debt", "write_off"] = "debt"
    welcome_points: Whole = Field(default=0, ge=0, le=1_000_000)
    redeem_points: Whole = Field(default=100, ge=1, le=1_000_000, description="this many points …")
    redeem_amount: Whole = Field(
        default=100, ge=1, le=100_000_000, description="… are worth this many minor units (store credit, paying)"
    )
    pay_with_points_max_percent: Whole = Field(
        default=50, ge=0, le=100, description="the largest share of an order points may pay (0: not allowed)"
    )
    enrolment: Literal["open", "invitation"] = Field(
        default="open", description="invitation: joining needs an invitation code (an invite-only program)"
    )


class ProgramUpdate(Strict):
    name: PlainText | None = Field(default=None, min_length=1, max_length=120)
    points_name: PointsName | None = None
    points_name_by_language: PointsNames | None = Field(default=None, description="replaces it whole; {} to clear")
    timezone: TimeZoneName | None = None
    default_country: Country | None = None
    earn_points: Whole | None = Field(default=None, ge=0, le=1000)
    earn_per_amount: Whole | None = Field(default=None, ge=1, le=100_000_000)
    rounding: Rounding | None = None
    return_window_days: Whole | None = Field(default=None, ge=0, le=365)
    points_lifetime_months: Whole | None = Field(default=None, ge=1, le=240)
    never_expire: bool | None = Field(default=None, description="true: points never expire")
    expiry_warning_days: Whole | None = Field(default=None, ge=0, le=365)
    earn_on_shipping: bool | None = None
    earn_on_tax: bool | None = None
    earn_on_gift_cards: bool | None = None
    return_shortfall: Literal["debt", "write_off"] | None = None
    welcome_points: Whole | None = Field(default=None, ge=0, le=1_000_000)
    redeem_points: Whole | None = Field(default=None, ge=1, le=1_000_000)
    redeem_amount: Whole | None = Field(default=None, ge=1, le=100_000_000)
    pay_with_points_max_percent: Whole | None = Field(default=None, ge=0, le=100)
    enrolment: Literal["open", "invitation"] | None = None

    _no_null = field_validator("*", mode="before")(refuse_null)


class Program(ProgramSettings):
    model_config = ConfigDict(extra="forbid")

    id: str
    currency: str  # as stored: read back without checking it against today's ISO 4217 table
    currency_exponent: int
    rules_version: int = Field(default=0, description="the latest version of the earning rules (0: none yet)")
    status_version: int = Field(default=0, description="changes with tiers and VIP plans (0: none yet)")
    created_at: datetime
    updated_at: datetime

    def points_name_in(self, language: str) -> str:
        """What members of ``language`` call the points (``points_name`` unless the program says otherwise)."""
        for known, name in self.points_name_by_language.items():
            if known == language:
                return name
        return self.points_name

    def money(self, amount: int, language: str = "en") -> str:
        """``amount`` minor units of the program's currency as a person reads them (``€12.50``)."""
        return money(amount, self.currency, self.currency_exponent, language)


class KeyCreate(Strict):
    name: PlainText = Field(min_length=1, max_length=80)
    scopes: list[Scope] = Field(min_length=1)

    @field_validator("scopes")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return sorted(set(value))


class ApiKey(BaseModel):
    id: str
    name: str
    scopes: list[Scope]
    created_at: datetime
    revoked_at: datetime | None = None


class NewApiKey(ApiKey):
    secret: str = Field(description="the full key; shown once, never again")


class Caller(BaseModel):
    """Who is calling: the program and scopes of an API key (or the CLI)."""

    program_id: str
    key_id: str
    scopes: frozenset[str]

    @property
    def actor(self) -> str:
        return self.key_id


class AuditEntry(BaseModel):
    """One admin action: who (an API key id, ``staff:<id>`` in the console, or ``cli``), what, on what, when."""

    id: str
    actor: str
    action: str = Field(description="e.g. key.created, member.adjusted, rules.applied")
    subject_id: str | None = Field(description="the object acted on: a member, key, reward, program…")
    details: dict[str, Any] | None
    created_at: datetime


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None = Field(description="pass as `cursor` for older entries; null on the last page")
