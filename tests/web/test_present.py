"""How dates read on a page: "until …" names the last day included, and the time when the end is within it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from palier.programs.models import Program
from palier.web import present
from tests.factories import PROGRAM_ROW

PARIS = Program.model_validate(PROGRAM_ROW | {"id": "prg_TEST"})


@pytest.mark.parametrize(
    ("until", "language", "shown"),
    [
        (datetime(2026, 12, 24, 23, 0, tzinfo=UTC), "fr", "24 décembre 2026"),  # 25 December 00:00 in Paris
        (datetime(2026, 3, 8, 23, 0, tzinfo=UTC), "fr", "8 mars 2026"),  # 9 March 00:00 in Paris
        (datetime(2027, 1, 4, 23, 31, tzinfo=UTC), "fr", "5 janvier 2027, 00:31"),  # not the whole 5th: the time
        (datetime(2026, 3, 31, 22, 0, tzinfo=UTC), "en", "31 March 2026"),  # 1 April 00:00, summer time
        (datetime(2026, 4, 1, 10, 0, tzinfo=UTC), "en", "1 April 2026, 12:00"),
        (datetime(2026, 4, 1, 21, 59, tzinfo=UTC), "en", "1 April 2026"),  # 23:59: that day, to its end
        (datetime(2026, 4, 1, 21, 59, 59, tzinfo=UTC), "fr", "1 avril 2026"),
    ],
)
def test_until_names_the_last_day_included(until: datetime, language: str, shown: str) -> None:
    assert present.last_day(until, PARIS, language) == shown


def test_a_day_is_the_date_in_the_programs_time_zone() -> None:
    assert present.day(datetime(2026, 12, 24, 23, 0, tzinfo=UTC), PARIS, "fr") == "25 décembre 2026"
