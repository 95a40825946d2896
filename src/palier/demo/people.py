"""The demo's customers: French names, e-mails, phones, loyalty cards, payment cards, habits.

Payment card numbers are Luhn-valid numbers in a well-known *test* range (424242…). They live in
memory only, are handed to the services (which keep a keyed hash and the last four digits), and
are never printed, logged or written to a file.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from palier.text import luhn_valid

_FIRST = (
    "Camille Léa Manon Chloé Emma Inès Jade Louise Alice Lina Zoé Juliette Sarah Clara Anaïs Margaux "
    "Élodie Mathilde Pauline Sophie Hélène Isabelle Nathalie Céline Sandrine Aurélie Marion Lucie Agathe "
    "Lucas Hugo Louis Gabriel Arthur Jules Raphaël Adam Nathan Théo Tom Léo Paul Maxime Antoine Thomas "
    "Nicolas Julien Pierre Alexandre Baptiste Mathieu Olivier Romain François Guillaume Yann Karim Mehdi"
)
_LAST = (
    "Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau Simon Laurent Lefebvre Michel "
    "Garcia David Bertrand Roux Vincent Fournier Morel Girard André Lefèvre Mercier Dupont Lambert Bonnet "
    "François Martinez Legrand Garnier Faure Rousseau Blanc Guérin Muller Henry Roussel Nicolas Perrin "
    "Morin Mathieu Clément Gauthier Dumont Lopez Fontaine Chevalier Robin Masson Sanchez Gérard Nguyen "
    "Boyer Denis Lemaire Duval Joly Gautier Roger Roche Roy Noël Meyer Lucas Meunier Jean Perez Marchand"
)
FIRST_NAMES = tuple(_FIRST.split())
LAST_NAMES = tuple(_LAST.split())
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")


@dataclass
class Person:
    """One customer of the demo and how they shop (rates are visits per week)."""

    index: int
    first_name: str
    last_name: str
    email: str | None
    phone: str | None
    birthday: date | None
    language: str
    loyalty_card: str
    home_store: str
    enrol_at: datetime
    enrol_channel: str
    store_rate: float
    web_rate: float
    app_user: bool
    phone_rate: float
    quits_at: datetime | None = None
    payment_card: str | None = None  # a test PAN, in memory only
    card_linked_at: datetime | None = None  # when the payment card is linked (None: at enrolment)
    duplicate_of: int | None = None  # a second account of another person, merged at merge_at
    merge_at: datetime | None = None
    consents: dict[str, bool] = field(default_factory=dict)


def ascii_slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


def test_card_number(rng: random.Random) -> str:
    """A Luhn-valid 16-digit number in the 424242 test range (never a real card)."""
    body = "424242" + "".join(str(rng.randrange(10)) for _ in range(9))
    check = next(d for d in "0123456789" if luhn_valid(body + d))
    return body + check


class Registry:
    """Hands out identities that are unique across the demo (e-mails, phones, cards)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._taken: set[str] = set()

    def _unique(self, make: Callable[[], str]) -> str:
        while True:
            value = make()
            if value not in self._taken:
                self._taken.add(value)
                return value

    def email(self, first: str, last: str) -> str:
        style = self.rng.randrange(3)
        domain = self.rng.choice(EMAIL_DOMAINS)
        f, la = ascii_slug(first), ascii_slug(last)

        def make() -> str:
            local = (f"{f}.{la}", f"{f[0]}{la}", f"{f}{la}{self.rng.randrange(10, 99)}")[style]
            style_suffix = "" if self.rng.random() < 0.7 else str(self.rng.randrange(2, 999))
            return f"{local}{style_suffix}@{domain}"

        return self._unique(make)

    def phone(self) -> str:
        def make() -> str:
            # 06 1… to 06 8… are mobile ranges in service (06 39… and 06 9… are not all valid)
            digits = str(self.rng.randint(1, 8)) + "".join(str(self.rng.randrange(10)) for _ in range(7))
            if digits.startswith("39"):
                digits = "4" + digits[1:]
            pairs = " ".join(digits[i : i + 2] for i in range(0, 8, 2))
            return self.rng.choice((f"06 {pairs}", f"+33 6 {pairs}", f"06{digits}"))

        # the same number typed two ways is still one phone: compare on digits
        while True:
            number = make()
            key = number.replace(" ", "").removeprefix("+33").removeprefix("0")
            if key not in self._taken:
                self._taken.add(key)
                return number

    def loyalty_card(self) -> str:
        return self._unique(lambda: f"MF{self.rng.randrange(10**8):08d}")

    def payment_card(self) -> str:
        return self._unique(lambda: test_card_number(self.rng))
