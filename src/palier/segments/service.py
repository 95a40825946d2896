"""Segments, refreshed by set-based SQL: one statement computes every member's figures, conditions filter them.

A member's figures (total spend net of refunds, orders, recency, RFM scores in quintiles, channel mix,
birthday month, tier, language…) are computed in one grouped query with window functions, on both
engines. A segment's conditions are validated data turned into SQL comparisons (no eval). Refreshing a
segment diffs the new member set with the stored one and writes segment_entered / segment_left events.

The built-in kind ``top_revenue`` keeps the top X % of customers (members with at least one order),
ranked by net spend (ties by member id, so the cut is exact and repeatable).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, and_, case, false, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from palier.activity.tables import events, purchases
from palier.clock import Clock, utc
from palier.db import Database
from palier.db.bulk import insert_many
from palier.errors import Conflict, InvalidInput, NotFound
from palier.ids import new_id
from palier.members.tables import members
from palier.notify.outbox import emit_many
from palier.programs.models import Program
from palier.programs.service import record_audit
from palier.segments.models import STORED, Condition, Refreshed, Segment, SegmentIn
from palier.segments.tables import segment_members, segments
from palier.tiers.status import bump
from palier.tiers.tables import member_tiers

CHANNELS = ("web", "store", "app", "phone")
_FAR_DAYS = 100_000  # about 274 years: further back or ahead than any purchase or enrolment


def _check_tiers(conn: Connection, program: Program, data: SegmentIn) -> None:
    """A ``tier`` condition names the program's own tier codes: "Gold" for gold would leave the segment empty."""
    from palier.tiers.service import get_policy

    tested = [(i, c) for i, c in enumerate(data.conditions) if c.field == "tier"]
    if not tested:
        return
    policy = get_policy(conn, program_id=program.id)
    known = [t.code for t in policy.tiers] if policy is not None else []
    for i, condition in tested:
        values = condition.value if isinstance(condition.value, list) else [condition.value]
        if any(v not in known for v in values):
            raise InvalidInput(
                "invalid_choice",
                f"tier is one of this program's tier codes: {', '.join(known) or 'none yet'}.",
                field=f"conditions[{i}].value",
            )


def create_segment(*, conn: Connection, clock: Clock, program: Program, data: SegmentIn, actor: str) -> Segment:
    _check_tiers(conn, program, data)
    now = clock.now()
    segment_id = new_id("segment")
    try:
        with conn.begin_nested():
            conn.execute(
                insert(segments).values(
                    id=segment_id,
                    program_id=program.id,
                    code=data.code,
                    name=data.name.model_dump(),
                    kind=data.kind,
                    definition=data.model_dump(mode="json"),
                    created_at=now,
                )
            )
    except IntegrityError:
        raise Conflict("segment_code_taken", f"A segment {data.code!r} already exists.", field="code") from None
    bump(conn, program_id=program.id)
    record_audit(
        conn=conn, clock=clock, program_id=program.id, actor=actor, action="segment.created", subject_id=segment_id,
        details=data.model_dump(mode="json"),
    )  # fmt: skip
    return get_segment(conn=conn, program_id=program.id, code=data.code)


def update_segment(
    *, conn: Connection, clock: Clock, program: Program, code: str, data: SegmentIn, actor: str
) -> Segment:
    """A new definition for segment ``code`` (its code stays: rules, rewards and plans name it). Members
    move in or out at the next refresh, as after a creation."""
    before = get_segment(conn=conn, program_id=program.id, code=code)
    if data.code != code:
        raise InvalidInput(
            "segment_code_fixed",
            f"A segment's code cannot change (rules, rewards and plans name it): send code {code!r}.",
            field="code",
        )
    _check_tiers(conn, program, data)
    definition = data.model_dump(mode="json")
    conn.execute(
        update(segments)
        .where(segments.c.id == before.id)
        .values(name=data.name.model_dump(), kind=data.kind, definition=definition)
    )
    bump(conn, program_id=program.id)
    kept = before.model_dump(include=set(SegmentIn.model_fields))
    old = SegmentIn.model_validate(kept, context={STORED: True}).model_dump(mode="json")
    record_audit(
        conn=conn, clock=clock, program_id=program.id, actor=actor, action="segment.updated", subject_id=before.id,
        details={"before": old, "after": definition},
    )  # fmt: skip
    return get_segment(conn=conn, program_id=program.id, code=code)


def get_segment(*, conn: Connection, program_id: str, code: str) -> Segment:
    row = conn.execute(select(segments).where(segments.c.program_id == program_id, segments.c.code == code)).mappings()
    found = row.first()
    if found is None:
        raise NotFound("segment_not_found", f"No segment {code!r} in this program.", field="segment")
    return _segment(found)


def list_segments(*, conn: Connection, program_id: str) -> list[Segment]:
    rows = conn.execute(select(segments).where(segments.c.program_id == program_id).order_by(segments.c.code))
    return [_segment(r) for r in rows.mappings()]


def _segment(row: Any) -> Segment:
    return Segment.model_validate(
        row["definition"]
        | {
            "id": row["id"],
            "members_count": row["members_count"],
            "refreshed_at": utc(row["refreshed_at"]) if row["refreshed_at"] else None,
            "created_at": utc(row["created_at"]),
        },
        context={STORED: True},
    )


def member_segments(conn: Connection, *, member_id: str, at: datetime | None = None) -> frozenset[str]:
    """The codes of the segments the member is in (for rules, reward eligibility and plans); with ``at``, only
    those they had entered by then: a purchase sent late, made before a refresh put the member in a segment,
    does not earn that segment's bonus."""
    query = (
        select(segments.c.code)
        .join(segment_members, segment_members.c.segment_id == segments.c.id)
        .where(segment_members.c.member_id == member_id)
    )
    if at is not None:
        query = query.where(segment_members.c.since <= at)
    return frozenset(conn.execute(query).scalars())


# --- every member's figures, in one statement ---


def figures(program_id: str, now: datetime) -> Select[Any]:
    """Per active member of the program: the columns conditions can use (see models.NUMERIC_FIELDS)."""
    net = purchases.c.total - purchases.c.refunded
    counted = case((purchases.c.refunded < purchases.c.total, 1), else_=0)
    orders = (
        select(
            purchases.c.member_id.label("member_id"),
            func.sum(net).label("total_spend"),
            func.sum(counted).label("order_count"),
            # the last order that still counts: one given back in full is no purchase, as for order_count
            func.max(case((purchases.c.refunded < purchases.c.total, events.c.occurred_at))).label("last_purchase"),
            *[
                func.sum(
                    case((and_(events.c.channel == channel, purchases.c.refunded < purchases.c.total), 1), else_=0)
                ).label(f"{channel}_orders")
                for channel in CHANNELS
            ],
        )
        .join(events, events.c.id == purchases.c.event_id)
        .where(purchases.c.program_id == program_id, purchases.c.member_id.is_not(None))
        .group_by(purchases.c.member_id)
        .subquery("orders")
    )
    order_count = func.coalesce(orders.c.order_count, 0)
    has_orders = order_count > 0
    buyers = func.sum(case((has_orders, 1), else_=0)).over()

    def quintile(column: ColumnElement[Any]) -> ColumnElement[Any]:
        """1 … 5 among members with orders (5: the most recent / frequent / spending); 0 without.

        ceil(5 × the share of buyers at or below this member), in integers: the best is always 5."""
        at_or_below = buyers - func.rank().over(partition_by=has_orders, order_by=column.desc()) + 1
        return case((has_orders, (at_or_below * 5 + buyers - 1) // buyers), else_=0)

    recency = quintile(func.coalesce(orders.c.last_purchase, literal(datetime(1970, 1, 1))))
    frequency = quintile(order_count)
    monetary = quintile(func.coalesce(orders.c.total_spend, 0))
    base = (
        select(
            members.c.id.label("member_id"),
            func.coalesce(orders.c.total_spend, 0).label("total_spend"),
            order_count.label("order_count"),
            orders.c.last_purchase.label("last_purchase"),
            members.c.enrolled_at.label("enrolled_at"),
            recency.label("rfm_recency"),
            frequency.label("rfm_frequency"),
            monetary.label("rfm_monetary"),
            func.extract("month", members.c.birthday).label("birthday_month"),
            *[
                case((has_orders, func.coalesce(orders.c[f"{ch}_orders"], 0) * 100 // order_count), else_=0).label(
                    f"{ch}_share"
                )
                for ch in CHANNELS
            ],
            member_tiers.c.tier.label("tier"),
            members.c.language.label("language"),
            members.c.enrolment_channel.label("enrolment_channel"),
            func.row_number()
            .over(order_by=(func.coalesce(orders.c.total_spend, 0).desc(), members.c.id))
            .label("revenue_rank"),
            buyers.label("buyers"),
        )
        .select_from(
            members.outerjoin(orders, orders.c.member_id == members.c.id).outerjoin(
                member_tiers, member_tiers.c.member_id == members.c.id
            )
        )
        .where(members.c.program_id == program_id, members.c.status == "active")
    )
    return base


def _comparison(stats: Any, condition: Condition, now: datetime) -> ColumnElement[bool]:
    """One condition as SQL over the figures subquery ``stats``."""
    op, value = condition.op, condition.value
    column: Any
    if condition.field in ("days_since_last_purchase", "days_since_enrolment"):
        column = stats.c.last_purchase if condition.field == "days_since_last_purchase" else stats.c.enrolled_at
        return _days_since(column, op, value, now)
    if condition.field == "rfm_score":
        column = stats.c.rfm_recency + stats.c.rfm_frequency + stats.c.rfm_monetary
    else:
        column = stats.c[condition.field]
    return _compare(column, op, value)


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "in":
        return column.in_(value)  # type: ignore[no-any-return]
    if op == "not_in":
        return column.is_(None) | column.not_in(value)  # type: ignore[no-any-return]
    return {  # type: ignore[no-any-return]
        "=": column == value,
        "!=": column.is_(None) | (column != value),
        "<": column < value,
        "<=": column <= value,
        ">": column > value,
        ">=": column >= value,
    }[op]


def _days_since(column: Any, op: str, value: Any, now: datetime) -> ColumnElement[bool]:
    """'days since X op N' as a comparison of X with a moment, so it uses no date arithmetic in SQL.

    Days are whole days: X happened d days ago when now - X is at least d days and less than d + 1.
    Never (no purchase) counts as infinitely long ago.
    """

    def ago(days: int) -> datetime:
        # a count allowed up to ±10¹² days is past what any calendar holds (Python's ends at year 9999): beyond
        # _FAR_DAYS no member's date can lie, so the comparison is the same, without overflowing
        return now - timedelta(days=max(-_FAR_DAYS, min(days, _FAR_DAYS)))

    never = column.is_(None)
    if op in ("in", "not_in"):
        inside = [and_(column <= ago(d), column > ago(d + 1)) for d in value]
        matched = or_(*inside) if inside else false()
        return matched if op == "in" else (never | ~matched)
    return {  # type: ignore[no-any-return]
        ">=": never | (column <= ago(value)),
        ">": never | (column <= ago(value + 1)),
        "<=": column > ago(value + 1),
        "<": column > ago(value),
        "=": and_(column <= ago(value), column > ago(value + 1)),
        "!=": never | ~and_(column <= ago(value), column > ago(value + 1)),
    }[op]


def holds(stats: Any, segment: SegmentIn, now: datetime) -> ColumnElement[bool]:
    """Whether a member of ``stats`` (the :func:`figures` of ``now``) is in ``segment``."""
    tests = []
    if segment.kind == "top_revenue":
        assert segment.percent is not None
        # ceil(buyers × percent / 100) in integers
        cut = (stats.c.buyers * segment.percent + 99) // 100
        tests += [stats.c.order_count > 0, stats.c.revenue_rank <= cut]
    tests += [_comparison(stats, condition, now) for condition in segment.conditions]
    return and_(*tests)


# --- refreshing ---


def refresh(db: Database, clock: Clock, *, program_id: str, code: str | None = None) -> list[Refreshed]:
    """Recompute one segment (or all of the program's): who entered, who left, written with their events.

    Every member's figures are worked out once for all the segments, in one read: the segments agree with each
    other, and refreshing many costs about as much as refreshing one. That read takes seconds over many members;
    it holds no write lock (SQLite has one, which a till's purchase would wait for): only who entered and who
    left is written, in a short transaction after it."""
    now = clock.now()
    with db.read() as conn:
        wanted = _wanted(conn, program_id, code)
        found = _members_of(conn, program_id, wanted, now) if wanted else []
    if not wanted:
        return []
    with db.write() as conn:
        return refresh_in(conn=conn, clock=clock, program_id=program_id, code=code, worked_out=(now, wanted, found))


def _wanted(conn: Connection, program_id: str, code: str | None) -> list[Segment]:
    wanted = [s for s in list_segments(conn=conn, program_id=program_id) if code is None or s.code == code]
    if code is not None and not wanted:
        raise NotFound("segment_not_found", f"No segment {code!r} in this program.", field="segment")
    return wanted


def refresh_in(
    *,
    conn: Connection,
    clock: Clock,
    program_id: str,
    code: str | None = None,
    actor: str | None = None,
    worked_out: tuple[datetime, list[Segment], list[set[str]]] | None = None,
) -> list[Refreshed]:
    """:func:`refresh` in the caller's transaction (the API keeps its answer there, for retries).

    ``actor``: an admin asked for it (audited, one entry per segment); the nightly job passes none.
    ``worked_out``: the members of the segments as a read before this transaction found them at a moment: kept
    if the segments' definitions are still the same (else worked out again here), without the members who have
    left the program since (merged, erased), whose segment rows are gone."""
    now = clock.now()
    wanted = _wanted(conn, program_id, code)
    if not wanted:
        return []
    ids = sorted(s.id for s in wanted)
    conn.execute(select(segments.c.id).where(segments.c.id.in_(ids)).with_for_update())  # one refresh at once
    read_before = worked_out is not None and _same(worked_out[1], wanted)
    if worked_out is not None and read_before:
        now, found = worked_out[0], worked_out[2]
    else:
        found = _members_of(conn, program_id, wanted, now)
    done = [
        _save(conn, now, program_id, segment, members, read_before=read_before)
        for segment, members in zip(wanted, found, strict=True)
    ]
    for segment, result in zip(wanted, done, strict=True):
        if actor is not None:
            record_audit(
                conn=conn, clock=clock, program_id=program_id, actor=actor, action="segment.refreshed",
                subject_id=segment.id, details=result.model_dump(),
            )  # fmt: skip
    return done


def _same(before: list[Segment], now: list[Segment]) -> bool:
    """Whether the segments are the same ones, with the same definitions, as when their members were worked out,
    and no other refresh (another worker) has written since: its newer figures are not undone."""
    fields = set(SegmentIn.model_fields)

    def seen(found: list[Segment]) -> list[tuple[str, datetime | None, dict[str, Any]]]:
        return [(s.id, s.refreshed_at, s.model_dump(include=fields)) for s in found]

    return seen(before) == seen(now)


def _no_longer_active(conn: Connection, program_id: str, found: set[str]) -> set[str]:
    """Those of ``found`` who are no longer active members (merged or erased since they were seen)."""
    active: set[str] = set()
    for chunk in _chunks(sorted(found), 5000):
        active.update(
            conn.execute(
                select(members.c.id).where(
                    members.c.program_id == program_id, members.c.status == "active", members.c.id.in_(chunk)
                )
            ).scalars()
        )
    return found - active


def _members_of(conn: Connection, program_id: str, wanted: list[Segment], now: datetime) -> list[set[str]]:
    """The members of each segment: one pass over every member's figures, a column per segment."""
    stats = figures(program_id, now).subquery("stats")
    tests = [holds(stats, segment, now) for segment in wanted]
    query = select(stats.c.member_id, *[case((test, 1), else_=0) for test in tests]).where(or_(*tests))
    found: list[set[str]] = [set() for _ in wanted]
    for member_id, *inside in conn.execute(query):
        for members_of_segment, is_in in zip(found, inside, strict=True):
            if is_in:
                members_of_segment.add(member_id)
    return found


def _save(
    conn: Connection, now: datetime, program_id: str, segment: Segment, new: set[str], *, read_before: bool = False
) -> Refreshed:
    """Write who entered and who left ``segment`` (now holding ``new``), with their events. ``read_before``:
    ``new`` was read before this transaction; a member merged or erased since, whose segment rows those commands
    removed, does not enter again."""
    old = set(
        conn.execute(select(segment_members.c.member_id).where(segment_members.c.segment_id == segment.id)).scalars()
    )
    if read_before:
        new = new - _no_longer_active(conn, program_id, new - old)
    entered, left = sorted(new - old), sorted(old - new)
    insert_many(
        conn,
        segment_members,
        [{"segment_id": segment.id, "member_id": m, "program_id": program_id, "since": now} for m in entered],
    )
    for chunk in _chunks(left, 5000):
        conn.execute(
            segment_members.delete().where(
                segment_members.c.segment_id == segment.id, segment_members.c.member_id.in_(chunk)
            )
        )
    emit_many(
        conn,
        [(program_id, "segment_entered", m, {"member_id": m, "segment": segment.code}) for m in entered]
        + [(program_id, "segment_left", m, {"member_id": m, "segment": segment.code}) for m in left],
        now=now,
    )
    conn.execute(update(segments).where(segments.c.id == segment.id).values(members_count=len(new), refreshed_at=now))
    return Refreshed(segment=segment.code, members=len(new), entered=len(entered), left=len(left))


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def refresh_all(db: Database, clock: Clock, *, program_id: str | None = None) -> list[Refreshed]:
    """Every segment of every program (or of ``program_id``): the job."""
    with db.read() as conn:
        query = select(segments.c.program_id).distinct()
        if program_id is not None:
            query = query.where(segments.c.program_id == program_id)
        program_ids = list(conn.execute(query).scalars())
    done: list[Refreshed] = []
    for pid in program_ids:
        done += refresh(db, clock, program_id=pid)
    return done


def move_member(conn: Connection, *, source_id: str, target_id: str, now: datetime) -> None:
    """A merge: the closed member leaves its segments, with a ``segment_left`` event each (the refresh, which
    sees only active members, never would); the next refresh judges the one that remains."""
    left = conn.execute(
        select(segments.c.id, segments.c.program_id, segments.c.code)
        .join(segment_members, segment_members.c.segment_id == segments.c.id)
        .where(segment_members.c.member_id == source_id)
        .order_by(segments.c.code)
    ).all()
    for segment_id, _, _ in left:  # the segment's row first, as a refresh locks it (one lock order)
        conn.execute(
            update(segments).where(segments.c.id == segment_id).values(members_count=segments.c.members_count - 1)
        )
    conn.execute(segment_members.delete().where(segment_members.c.member_id == source_id))
    emit_many(
        conn,
        [(pid, "segment_left", source_id, {"member_id": source_id, "segment": code}) for _, pid, code in left],
        now=now,
    )
    del target_id
