"""Segments: the top X % of customers by revenue checked against a direct computation on random data,
rule segments over RFM, recency, birthday month and channel mix, and the events of who enters and leaves."""

from __future__ import annotations

import math
import random
from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from palier.clock import FrozenClock
from palier.db import Database
from palier.notify.outbox import recent
from palier.programs.models import Program
from palier.segments import service as segments
from palier.segments.models import SegmentIn
from tests.services.factories import ACTOR, enrol, line, merge, purchase, return_


def define(db: Database, clock: FrozenClock, program: Program, **fields: Any) -> None:
    data = SegmentIn.model_validate({"name": {"fr": "Segment", "en": "Segment"}} | fields)
    with db.write() as conn:
        segments.create_segment(conn=conn, clock=clock, program=program, data=data, actor=ACTOR)


def members_of(db: Database, program: Program, code: str) -> set[str]:
    from sqlalchemy import select

    from palier.segments.tables import segment_members
    from palier.segments.tables import segments as table

    with db.read() as conn:
        return set(
            conn.execute(
                select(segment_members.c.member_id)
                .join(table, table.c.id == segment_members.c.segment_id)
                .where(table.c.program_id == program.id, table.c.code == code)
            ).scalars()
        )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_top_revenue_matches_a_direct_computation(
    db: Database, clock: FrozenClock, program: Program, seed: int
) -> None:
    rng = random.Random(seed)
    people = [enrol(db, clock, program, first_name=f"P{i}") for i in range(rng.randint(15, 30))]
    spent: dict[str, int] = {p.id: 0 for p in people}
    for person in people:
        for n in range(rng.choice([0, 0, 1, 1, 2, 3])):
            amount = rng.choice([500, 1000, 1000, 2500, rng.randint(100, 90_000)])
            order = f"{person.id}-{n}"
            purchase(db, clock, program, person, order_id=order, lines=[line("A", amount)])
            spent[person.id] += amount
            if rng.random() < 0.2:  # a full refund: the order no longer counts
                return_(db, clock, program, order, lines=[("A", 1)])
                spent[person.id] -= amount
    define(db, clock, program, code="top", kind="top_revenue", percent=20)
    segments.refresh(db, clock, program_id=program.id)

    buyers = [m for m, s in spent.items() if s > 0]
    ranked = sorted(buyers, key=lambda m: (-spent[m], m))
    expected = set(ranked[: math.ceil(len(buyers) * 20 / 100)])
    assert members_of(db, program, "top") == expected


def test_rules_segments_and_their_events(db: Database, clock: FrozenClock, program: Program) -> None:
    loyal = enrol(db, clock, program, first_name="Loyal", birthday=date(1990, 3, 14))
    lapsed = enrol(db, clock, program, first_name="Lapsed", birthday=date(1985, 7, 2))
    web = enrol(db, clock, program, first_name="Web")
    for n in range(4):
        purchase(db, clock, program, loyal, lines=[line("A", 3_000)], occurred_at=clock.now() - timedelta(days=n))
    purchase(db, clock, program, lapsed, lines=[line("A", 9_000)], occurred_at=clock.now() - timedelta(days=200))
    purchase(db, clock, program, web, channel="web", lines=[line("A", 1_000)])
    define(db, clock, program, code="march", conditions=[{"field": "birthday_month", "op": "=", "value": 3}])
    define(
        db, clock, program, code="lapsing",
        conditions=[{"field": "days_since_last_purchase", "op": ">=", "value": 90},
                    {"field": "total_spend", "op": ">=", "value": 5_000}],
    )  # fmt: skip
    define(db, clock, program, code="online", conditions=[{"field": "web_share", "op": ">=", "value": 50}])
    champions = [{"field": "rfm_frequency", "op": "=", "value": 5}, {"field": "rfm_recency", "op": ">=", "value": 4}]
    define(db, clock, program, code="champions", conditions=champions)
    refreshed = {r.segment: r for r in segments.refresh(db, clock, program_id=program.id)}
    assert members_of(db, program, "march") == {loyal.id}
    assert members_of(db, program, "lapsing") == {lapsed.id}
    assert members_of(db, program, "online") == {web.id}
    assert members_of(db, program, "champions") == {loyal.id}
    assert refreshed["march"].entered == 1 and refreshed["march"].left == 0

    clock.advance(days=120)  # Loyal stops buying; Web buys a lot in store
    purchase(db, clock, program, web, lines=[line("B", 1_000)] * 1)
    purchase(db, clock, program, web, lines=[line("B", 9_000)])
    segments.refresh(db, clock, program_id=program.id)
    assert members_of(db, program, "online") == set()  # now 1 order of 3 online
    with db.read() as conn:
        events = recent(conn, program_id=program.id, types=["segment_left"])
    assert {(e["payload"]["segment"], e["subject_id"]) for e in events} >= {("online", web.id)}


@pytest.mark.parametrize(
    ("condition", "code"),
    [
        ({"field": "tier", "op": ">=", "value": "gold"}, "op_not_applicable"),
        ({"field": "total_spend", "op": "in", "value": []}, "list_required"),
        ({"field": "total_spend", "op": "=", "value": "lots"}, "number_required"),
        ({"field": "language", "op": "=", "value": 3}, "text_required"),
        ({"field": "wealth", "op": "=", "value": 3}, "literal_error"),
    ],
)
def test_bad_conditions_are_refused(condition: dict[str, Any], code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SegmentIn.model_validate({"code": "x", "name": {"fr": "x", "en": "x"}, "conditions": [condition]})
    assert code in str(caught.value) or code in {e["type"] for e in caught.value.errors()}


def test_a_segment_is_redefined_under_its_code_and_members_move_at_the_refresh(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    from sqlalchemy import select

    from palier.errors import InvalidInput, NotFound
    from palier.programs.tables import audit_entries

    march = enrol(db, clock, program, first_name="Mars", birthday=date(1990, 3, 14))
    july = enrol(db, clock, program, first_name="Juillet", birthday=date(1985, 7, 2))
    define(db, clock, program, code="birthdays", conditions=[{"field": "birthday_month", "op": "=", "value": 3}])
    segments.refresh(db, clock, program_id=program.id)
    assert members_of(db, program, "birthdays") == {march.id}
    july_only = SegmentIn.model_validate(
        {"code": "birthdays", "name": {"fr": "Nés en juillet", "en": "Born in July"},
         "conditions": [{"field": "birthday_month", "op": "=", "value": 7}]}
    )  # fmt: skip
    with db.write() as conn:
        updated = segments.update_segment(
            conn=conn, clock=clock, program=program, code="birthdays", data=july_only, actor=ACTOR
        )
    assert updated.name.en == "Born in July" and updated.members_count == 1  # until the refresh
    refreshed = segments.refresh(db, clock, program_id=program.id, code="birthdays")[0]
    assert (refreshed.entered, refreshed.left) == (1, 1) and members_of(db, program, "birthdays") == {july.id}
    renamed = july_only.model_copy(update={"code": "july"})
    with db.write() as conn, pytest.raises(InvalidInput) as refused:
        segments.update_segment(conn=conn, clock=clock, program=program, code="birthdays", data=renamed, actor=ACTOR)
    assert (refused.value.code, refused.value.field) == ("segment_code_fixed", "code")
    with db.write() as conn, pytest.raises(NotFound):
        segments.update_segment(conn=conn, clock=clock, program=program, code="nobody", data=july_only, actor=ACTOR)
    with db.read() as conn:
        audit = conn.execute(
            select(audit_entries.c.details).where(
                audit_entries.c.program_id == program.id, audit_entries.c.action == "segment.updated"
            )
        ).scalar_one()
    assert audit["before"]["conditions"][0]["value"] == 3 and audit["after"]["conditions"][0]["value"] == 7


def test_a_merged_member_leaves_its_segments_with_an_event(db: Database, clock: FrozenClock, program: Program) -> None:
    """A mailer that mirrors a segment from its events drops the closed account too, not only the refresh's."""
    twin = enrol(db, clock, program, first_name="Ann", birthday=date(1990, 3, 14))
    ann = enrol(db, clock, program, first_name="Ann", birthday=date(1990, 3, 14))
    define(db, clock, program, code="march", conditions=[{"field": "birthday_month", "op": "=", "value": 3}])
    segments.refresh(db, clock, program_id=program.id)
    merge(db, clock, program, twin, ann)
    with db.read() as conn:
        left = recent(conn, program_id=program.id, types=["segment_left"])
        count = segments.get_segment(conn=conn, program_id=program.id, code="march").members_count
    assert [(e["subject_id"], e["payload"]) for e in left] == [(twin.id, {"member_id": twin.id, "segment": "march"})]
    assert count == 1 and members_of(db, program, "march") == {ann.id}
    assert segments.refresh(db, clock, program_id=program.id)[0].model_dump() == {
        "segment": "march", "members": 1, "entered": 0, "left": 0
    }  # fmt: skip


def test_a_segment_stored_before_its_values_were_checked_still_loads_refreshes_and_changes(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """A definition saved by an older Palier (language "de") stays readable: the checks are for what is sent."""
    from sqlalchemy import select, update

    from palier.segments.tables import segments as segment_rows

    define(db, clock, program, code="germans", conditions=[{"field": "language", "op": "=", "value": "fr"}])
    with db.write() as conn:
        mine = segment_rows.c.program_id == program.id
        row = conn.execute(select(segment_rows.c.definition).where(mine)).scalar_one()
        stored = row | {"conditions": [{"field": "language", "op": "=", "value": "de"}]}
        conn.execute(update(segment_rows).where(mine).values(definition=stored))
    with db.read() as conn:
        (found,) = segments.list_segments(conn=conn, program_id=program.id)
    assert found.conditions[0].value == "de"
    assert segments.refresh(db, clock, program_id=program.id)[0].members == 0
    renamed = SegmentIn.model_validate({"name": {"fr": "Germanophones", "en": "German speakers"}, "conditions": [
        {"field": "language", "op": "=", "value": "fr"}], "code": "germans"})  # fmt: skip
    with db.write() as conn:
        changed = segments.update_segment(
            conn=conn, clock=clock, program=program, code="germans", data=renamed, actor=ACTOR
        )
    assert changed.conditions[0].value == "fr"


def test_a_segment_bonus_goes_to_purchases_made_once_the_member_was_in_the_segment(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """A rule's ``segments`` hold on the member's segments when the purchase occurred: a till that was offline
    sends a purchase made before the refresh that put the member in "regulars", and it gets no regulars' bonus;
    one made after it does."""
    from tests.services.factories import apply_rules, get_member

    regular = {"id": "regulars", "name": {"en": "Regulars' bonus"}, "event": "purchase",
               "conditions": {"segments": ["regulars"]}, "effect": {"type": "fixed", "points": 50}}  # fmt: skip
    base = {"id": "base", "name": {"en": "1 point per euro"}, "event": "purchase"}
    base["effect"] = {"type": "points_per_amount", "points": 1, "per_amount": 100}
    define(db, clock, program, code="regulars", conditions=[{"field": "order_count", "op": ">=", "value": 1}])
    program = apply_rules(db, clock, program, {"rules": [base, regular]})
    ann = enrol(db, clock, program)
    clock.advance(hours=1)
    assert purchase(db, clock, program, ann, amount=1000).points == 10  # not a regular yet
    offline_at = clock.now() + timedelta(hours=1)
    clock.advance(hours=2)
    segments.refresh(db, clock, program_id=program.id)  # Ann is a regular from now on
    assert members_of(db, program, "regulars") == {ann.id}
    assert get_member(db, program, ann.id).status == "active"
    late = purchase(db, clock, program, ann, amount=1000, occurred_at=offline_at)  # made before the refresh
    assert (late.points, [a.rule_id for a in late.awards]) == (10, ["base"])
    clock.advance(minutes=5)
    assert purchase(db, clock, program, ann, amount=1000).points == 10 + 50


def test_an_order_given_back_in_full_is_no_purchase_for_recency(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """A customer who returned everything they bought yesterday has not bought lately: order_count says 0, and
    so do days_since_last_purchase and rfm_recency, which look at the last order that still counts."""
    gave_back = enrol(db, clock, program, first_name="Gave back")
    kept_old = enrol(db, clock, program, first_name="Kept old")
    purchase(db, clock, program, gave_back, order_id="gb-1", lines=[line("A", 5_000)])
    return_(db, clock, program, "gb-1", lines=[("A", 1)])
    purchase(db, clock, program, kept_old, lines=[line("A", 5_000)], occurred_at=clock.now() - timedelta(days=200))
    purchase(db, clock, program, kept_old, order_id="ko-2", lines=[line("A", 5_000)])
    return_(db, clock, program, "ko-2", lines=[("A", 1)])  # their last order, given back: they last bought 200 days ago
    recent = {"field": "days_since_last_purchase", "op": "<", "value": 30}
    define(db, clock, program, code="recent", conditions=[recent])
    define(db, clock, program, code="winback", conditions=[
        {"field": "days_since_last_purchase", "op": ">=", "value": 90}, {"field": "order_count", "op": ">", "value": 0}
    ])  # fmt: skip
    segments.refresh(db, clock, program_id=program.id)
    assert members_of(db, program, "recent") == set()
    assert members_of(db, program, "winback") == {kept_old.id}


def test_the_segments_job_works_out_who_is_in_them_without_holding_the_write_lock(
    db: Database, clock: FrozenClock, program: Program, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Working out every member's figures takes seconds over tens of thousands of members (3 to 4 s at 50,000
    on SQLite): the job does it in a read, so a till's purchase does not queue behind it for SQLite's one write
    lock; only who entered and who left is written. A member merged into another meanwhile does not come back."""
    from palier.db.engine import _WRITE

    ann = enrol(db, clock, program, first_name="Ann")
    dup = enrol(db, clock, program, first_name="Ann")
    for who in (ann, dup):
        purchase(db, clock, program, who, lines=[line("A", 5_000)])
    define(db, clock, program, code="buyers", conditions=[{"field": "order_count", "op": ">=", "value": 1}])
    worked_out = segments._members_of
    in_a_write: list[bool] = []

    def watched(conn: Any, *args: Any) -> list[set[str]]:
        in_a_write.append(bool(conn.get_execution_options().get(_WRITE)))
        found = worked_out(conn, *args)
        merge(db, clock, program, dup, ann)  # while the job worked: dup is no member any more
        return found

    monkeypatch.setattr(segments, "_members_of", watched)
    assert [r.members for r in segments.refresh(db, clock, program_id=program.id)] == [1]
    assert in_a_write == [False]
    assert members_of(db, program, "buyers") == {ann.id}
    with db.read() as conn:
        told = recent(conn, program_id=program.id, types=["segment_entered", "segment_left"])
    assert [(e["type"], e["subject_id"]) for e in told] == [("segment_entered", ann.id)]


def test_a_refresh_written_by_another_worker_meanwhile_is_not_undone(
    db: Database, clock: FrozenClock, program: Program, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = enrol(db, clock, program, first_name="Ann")
    define(db, clock, program, code="buyers", conditions=[{"field": "order_count", "op": ">=", "value": 1}])
    worked_out = segments._members_of
    calls: list[int] = []

    def slow(conn: Any, *args: Any) -> list[set[str]]:
        calls.append(1)
        found = worked_out(conn, *args)  # Ann has not bought yet
        if len(calls) == 1:  # meanwhile she buys, and another worker's refresh puts her in
            purchase(db, clock, program, ann, lines=[line("A", 5_000)])
            clock.advance(seconds=30)
            with db.write() as other:
                segments.refresh_in(conn=other, clock=clock, program_id=program.id)
        return found

    monkeypatch.setattr(segments, "_members_of", slow)
    segments.refresh(db, clock, program_id=program.id)
    assert members_of(db, program, "buyers") == {ann.id}
    with db.read() as conn:
        told = recent(conn, program_id=program.id, types=["segment_entered", "segment_left"])
    assert [e["type"] for e in told] == ["segment_entered"]
