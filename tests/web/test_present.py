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
        (datetime(2026, 4, 1, 21, 59, 59, tzinfo=UTC), "fr", "1er avril 2026"),  # French writes the 1st "1er"
    ],
)
def test_until_names_the_last_day_included(until: datetime, language: str, shown: str) -> None:
    assert present.last_day(until, PARIS, language) == shown


def test_a_day_is_the_date_in_the_programs_time_zone() -> None:
    assert present.day(datetime(2026, 12, 24, 23, 0, tzinfo=UTC), PARIS, "fr") == "25 décembre 2026"


def test_the_first_of_a_month_is_1er_in_french_everywhere_a_date_is_written() -> None:
    """ "Valable jusqu'au 1er avril", never "jusqu'au 1 avril": on the portal, the how-it-works page's campaigns, the
    console and the tier message of the API."""
    from palier.rules.explain import _day
    from palier.web.console.fmt import day_of

    first = datetime(2026, 4, 1, 10, 0, tzinfo=UTC)
    assert present.day(first, PARIS, "fr") == "1er avril 2026"
    assert present.day(first, PARIS, "en") == "1 April 2026"
    assert present.moment(first, PARIS, "fr") == "1er avril 2026, 12:00"
    assert day_of(first.date(), "fr") == "1er avril 2026" and day_of(first.date(), "en") == "1 April 2026"
    assert _day(first.date(), "fr") == "1er avril 2026"
    assert present.day(datetime(2026, 4, 11, 10, 0, tzinfo=UTC), PARIS, "fr") == "11 avril 2026"  # 11, not 11er


def test_a_rate_below_zero_is_written_with_the_minus_sign_the_pages_use() -> None:
    """Points paid at checkout and given back by returns can outweigh a quiet period's redemptions: −5,0 %."""
    from palier.web.console.fmt import percent

    assert percent(-0.05, "fr") == "\u22125,0\u202f%" and percent(-0.05, "en") == "\u22125.0%"
    assert percent(0.2831, "fr") == "28,3\u202f%" and percent(None, "en") == "—"
    assert percent(-0.0001, "en") == "0.0%"  # no "−0.0%"
