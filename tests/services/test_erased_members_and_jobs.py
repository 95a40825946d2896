"""The jobs leave an erased member alone: no tier change, warning, segment, gift, ledger line or event about them
after the erasure (but the ``member_erased`` event), while the same jobs still handle everyone else."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from palier.clock import FrozenClock
from palier.db import Database
from palier.jobs import debts, sweeps
from palier.ledger.tables import ledger_transactions
from palier.members.erasure import erase
from palier.memberships import service as memberships
from palier.notify import expiry
from palier.notify.tables import outbox_events
from palier.programs.models import Program
from palier.rules import gifts
from palier.segments import service as segments
from palier.segments.tables import segment_members
from palier.tiers import service as tiers
from palier.tiers.tables import tier_history
from tests.services.factories import ACTOR, adjust, enrol
from tests.services.test_segments import define
from tests.services.test_tiers import spend, tier_of, with_tiers


def run_every_job(db: Database, clock: FrozenClock, program: Program) -> None:
    """Every job the worker runs about members (webhooks only push what these write to the outbox)."""
    pid = program.id
    sweeps.mature(db, clock, program_id=pid)
    sweeps.expire(db, clock, program_id=pid)
    gifts.birthdays(db, clock, program_id=pid)
    gifts.anniversaries(db, clock, program_id=pid)
    tiers.requalify(db, clock, program_id=pid)
    memberships.lapse(db, clock, program_id=pid)
    segments.refresh_all(db, clock, program_id=pid)
    debts.settle_all(db, clock, program_id=pid)
    expiry.warn(db, clock, program_id=pid)


def about(db: Database, member_id: str, since: datetime) -> dict[str, object]:
    """What was written about the member since ``since``: outbox events, tier changes, ledger lines, segments."""
    with db.read() as conn:
        return {
            "events": sorted(
                conn.execute(
                    select(outbox_events.c.type).where(
                        outbox_events.c.subject_id == member_id, outbox_events.c.created_at > since
                    )
                ).scalars()
            ),
            "tier_changes": conn.execute(
                select(func.count()).where(tier_history.c.member_id == member_id, tier_history.c.created_at > since)
            ).scalar_one(),
            "ledger_lines": conn.execute(
                select(func.count()).where(
                    ledger_transactions.c.member_id == member_id, ledger_transactions.c.created_at > since
                )
            ).scalar_one(),
            "segments": conn.execute(select(func.count()).where(segment_members.c.member_id == member_id)).scalar_one(),
        }


def test_the_jobs_leave_an_erased_member_alone(db: Database, clock: FrozenClock, program: Program) -> None:
    program = with_tiers(db, clock, program)  # yearly spend, judged at the year's end
    define(db, clock, program, code="everyone", conditions=[{"field": "language", "op": "in", "value": ["fr", "en"]}])
    erased, kept = (enrol(db, clock, program, language="fr") for _ in range(2))
    for member in (erased, kept):
        spend(db, clock, program, member, 600)  # Gold until the end of the year
        adjust(db, clock, program, member, 50)
    run_every_job(db, clock, program)
    assert tier_of(db, erased.id) == "gold"
    with db.write() as conn:
        erase(
            conn=conn, clock=clock, program=program, member_id=erased.id, reason="Asked to be forgotten",
            forfeit_store_credit=False, actor=ACTOR,
        )  # fmt: skip
    erased_at = clock.now()
    assert about(db, erased.id, erased_at)["events"] == []  # the member_erased event is written at that instant
    clock.set(datetime(2027, 2, 20, 9, 0, tzinfo=UTC))  # past the year's end, points expiring soon
    run_every_job(db, clock, program)
    assert about(db, erased.id, erased_at) == {"events": [], "tier_changes": 0, "ledger_lines": 0, "segments": 0}
    handled = about(db, kept.id, erased_at)  # the same jobs did their work for the member who stays
    assert (handled["tier_changes"], handled["events"], handled["segments"]) == (1, ["points_expiring"], 1), handled


def test_verify_reports_points_left_to_an_erased_member(db: Database, clock: FrozenClock, program: Program) -> None:
    from sqlalchemy import update

    from palier.ledger.verify import verify
    from palier.members.tables import members

    member = enrol(db, clock, program, language="fr")
    adjust(db, clock, program, member, 50)
    with db.write() as conn:  # marked erased behind the erasure's back: its 50 points would stay
        conn.execute(update(members).where(members.c.id == member.id).values(status="erased"))
        found = {(v.check, v.subject) for v in verify(conn, program_id=program.id)}
        conn.execute(update(members).where(members.c.id == member.id).values(status="active"))
    assert found == {("erased_member_holds_nothing", f"{member.id}:available")}, found
