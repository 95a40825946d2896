"""Staff users as the console and the CLI see them (never with their password hash)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from palier.clock import utc
from palier.staff.permissions import Role
from palier.text import PlainText

MIN_PASSWORD = 10


class StaffCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: EmailStr
    display_name: PlainText = Field(min_length=1, max_length=80)
    role: Role
    password: str = Field(max_length=200)

    @field_validator("password")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if len(value) < MIN_PASSWORD:  # its own code: the console says how long, not "too short or too long"
            raise ValueError(f"password_too_short: a password has at least {MIN_PASSWORD} characters")
        return value


class StaffUser(BaseModel):
    id: str
    program_id: str
    email: str
    display_name: str
    role: Role
    active: bool
    created_at: datetime
    last_sign_in_at: datetime | None = None

    @field_validator("created_at", "last_sign_in_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return utc(value) if value is not None else None  # SQLite gives naive datetimes back
