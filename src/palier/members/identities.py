"""Normalising the identities a member is found by: loyalty card, e-mail, phone, customer id, payment card.

Pure functions. A payment card becomes ``HMAC-SHA256(number, key)`` plus its last four digits and brand;
the number itself leaves this module nowhere.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from palier.errors import InvalidInput
from palier.text import find_card_numbers, luhn_valid

IdentityKind = Literal["card", "email", "phone", "external", "payment_card"]
KINDS: tuple[str, ...] = ("card", "email", "phone", "external", "payment_card")


@dataclass(frozen=True)
class Normalised:
    kind: str
    value: str  # what is stored and looked up
    last4: str | None = None
    brand: str | None = None
    display: str | None = None  # what may be shown back (never a card number)


def normalise(kind: str, raw: str, *, field: str, card_key: bytes, default_country: str = "FR") -> Normalised:
    raw = raw.strip()
    if kind == "email":
        return Normalised("email", normalise_email(raw, field=field))
    if kind == "phone":
        return Normalised("phone", normalise_phone(raw, field=field, default_country=default_country))
    if kind == "card":
        value = re.sub(r"[\s-]", "", raw).upper()
        if not re.fullmatch(r"[A-Z0-9]{4,32}", value):
            raise InvalidInput(
                "invalid_loyalty_card", "A loyalty card number is 4 to 32 letters or digits.", field=field
            )
        if is_payment_card_number(value):
            raise InvalidInput(
                "payment_card_as_loyalty_card",
                "This is a payment card number, which is never stored as it is. Link it as a payment card "
                "(kind payment_card): only its keyed hash and last four digits are kept.",
                field=field,
            )
        return Normalised("card", value)
    if kind == "external":
        if not 1 <= len(raw) <= 128:
            raise InvalidInput("invalid_external_id", "An external customer id is 1 to 128 characters.", field=field)
        return Normalised("external", _without_card_number(raw, "customer id", field=field))
    if kind == "payment_card":
        return hash_payment_card(raw, field=field, key=card_key)
    raise InvalidInput("unknown_identity_kind", f"Identity kind must be one of {', '.join(KINDS)}.", field=field)


def _without_card_number(raw: str, what: str, *, field: str) -> str:
    if find_card_numbers(raw):
        raise InvalidInput(
            "card_number_in_text",
            f"This {what} holds a payment card number, which is never stored as it is. Link the card as a "
            "payment card (kind payment_card): only its keyed hash and last four digits are kept.",
            field=field,
        )
    return raw


def normalise_email(raw: str, *, field: str) -> str:
    _without_card_number(raw, "e-mail address", field=field)
    try:
        return validate_email(raw, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidInput("invalid_email", f"Not a valid e-mail address: {exc}", field=field) from None


def normalise_phone(raw: str, *, field: str, default_country: str) -> str:
    """E.164 (``+33612345678``); numbers typed without ``+`` are read as ``default_country`` numbers."""
    if is_payment_card_number(ascii_digits(raw)):  # "+4970…": a Visa's digits pass as German
        raise InvalidInput(
            "card_number_in_text",
            "This is a payment card number, not a phone number: a card number is never stored.",
            field=field,
        )
    try:
        number = phonenumbers.parse(raw, default_country)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise InvalidInput(
            "invalid_phone",
            "Not a valid phone number; use international form such as +33 6 12 34 56 78.",
            field=field,
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_BRANDS = (
    ("amex", re.compile(r"3[47]")),
    ("visa", re.compile(r"4")),
    ("mastercard", re.compile(r"5[1-5]|2(2[2-9]|[3-6]\d|7[01]|720)")),
    ("discover", re.compile(r"6011|65|64[4-9]")),
    ("jcb", re.compile(r"35")),
    ("diners", re.compile(r"3(0[0-5]|[689])")),
    # Maestro (50, 56-58, 5893, 6304, 6759, 6761-6763), UnionPay (62), Mir (2200-2204): bank cards too, which a
    # till may scan into the loyalty card field. The rest of 6 (private-label and gift cards) stays for loyalty cards.
    ("maestro", re.compile(r"50|5[6-8]|6304|6759|676[1-3]")),
    ("unionpay", re.compile(r"62")),
    ("mir", re.compile(r"220[0-4]")),
)


def is_payment_card_number(value: str) -> bool:
    """13 to 19 digits, Luhn-valid, in a payment network's range: a bank card, not a loyalty card
    (loyalty card numbers are issued outside those ranges)."""
    return (
        value.isascii() and value.isdigit() and 13 <= len(value) <= 19 and luhn_valid(value)
        and card_brand(value) != "other"
    )  # fmt: skip


def ascii_digits(raw: str) -> str:
    """The digits of ``raw`` as 0 to 9, whichever script typed them (full-width ``４９７０`` from a Japanese
    keyboard is read as a phone's 4970 too); a superscript or a fraction is no digit."""
    return "".join(str(unicodedata.decimal(c)) for c in raw if c.isdecimal())


def card_brand(digits: str) -> str:
    for brand, prefix in _BRANDS:
        if prefix.match(digits):
            return brand
    return "other"


def hash_payment_card(raw: str, *, field: str, key: bytes) -> Normalised:
    digits = re.sub(r"[\s-]", "", raw)
    if re.fullmatch(r"\d{12,19}", digits):
        digits = ascii_digits(digits)  # typed in full-width digits (a Japanese keyboard): the same card, same hash
    if not re.fullmatch(r"[0-9]{12,19}", digits) or not luhn_valid(digits):
        raise InvalidInput(
            "invalid_payment_card",
            "Not a valid payment card number (12 to 19 digits, Luhn check).",
            field=field,
        )
    digest = hmac.new(key, digits.encode(), hashlib.sha256).hexdigest()
    return Normalised(
        "payment_card",
        digest,
        last4=digits[-4:],
        brand=card_brand(digits),
        display=f"{card_brand(digits)} •••• {digits[-4:]}",
    )


def display(kind: str, value: str, last4: str | None, brand: str | None) -> str:
    """What an identity may be shown as: card hashes never leave the database."""
    if kind == "payment_card":
        return f"{brand or 'card'} •••• {last4}"
    return value


def card_claim_key(program_id: str, card_hash: str) -> str:
    """The lock that serialises purchases paid with a card and the linking of that card to a member."""
    return f"card-claim:{program_id}:{card_hash}"
