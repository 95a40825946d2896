"""What the member portal's history shows of points owed: every line adds up to what the page says."""

from __future__ import annotations

from palier.clock import FrozenClock
from palier.db import Database
from palier.programs.models import Program
from palier.web import portal_view
from tests.services.factories import adjust, enrol, line, mature, purchase, return_


def test_the_portal_history_shows_points_owed_and_repaid(db: Database, clock: FrozenClock, program: Program) -> None:
    """A return after the points were spent leaves the member owing: the history line says how many, and the
    line whose points repay the debt says so, or the lines would not add up to what the page shows."""
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, lines=[line("A", 5_000)])  # 50 points
    clock.advance(days=40)
    mature(db, clock, program)
    adjust(db, clock, program, member, -50, reason="Gift basket")
    return_(db, clock, program, order.external_id, amount=5_000)  # 50 owed
    adjust(db, clock, program, member, 30, reason="Goodwill")  # repays 30 of it at once
    with db.read() as conn:
        views, _ = portal_view.history(conn, program, member.id, "fr", cursor=None, limit=20)
    shown = [(view.title, view.points, view.owed) for view in views]
    assert ("Retour d'article", 0, 50) in shown, shown
    assert shown[0] == ("Ajustement", 0, -30), shown  # the 30 points went to the debt: "30 de dette remboursés"
