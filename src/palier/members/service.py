"""Members on every channel: enrol, profile, identities, lookup, merge, balance."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from palier.clock import Clock, utc
from palier.errors import Conflict, InvalidInput, NotFound, PalierError
from palier.ids import is_id, new_id
from palier.ledger import operations as ledger
from palier.ledger.accounts import member_balance, open_member_accounts
from palier.ledger.catch_up import LiveLot, as_of
from palier.ledger.history import member_history
from palier.ledger.locks import lock_key, lock_members
from palier.ledger.tables import lots, postings
from palier.members import identities as ident
from palier.members.models import (
    Balance,
    Consents,
    Expiry,
    HistoryLine,
    HistoryPage,
    Identity,
    IdentityIn,
    Maturity,
    Member,
    MemberCreate,
    MemberUpdate,
    MergeResult,
)
from palier.members.tables import identities, members, merges
from palier.notify.outbox import TOLD_BALANCES
from palier.programs.models import Program
from palier.programs.service import record_audit
from palier.timeutil import add_months


def enrol(
    *, conn: Connection, clock: Clock, program: Program, data: MemberCreate, card_key: bytes, actor: str
) -> Member:
    """A new member, found from now on by every identity given; welcome points if the program gives them."""
    now = clock.now()
    member_id = new_id("member")
    wanted = _profile_identities(data.email, data.phone, program) + [
        _normalise(i, f"identities[{n}].value", program, card_key) for n, i in enumerate(data.identities)
    ]
    conn.execute(
        insert(members).values(
            id=member_id,
            program_id=program.id,
            status="active",
            first_name=data.first_name,
            last_name=data.last_name,
            email=_only(wanted, "email"),
            phone=_only(wanted, "phone"),
            birthday=data.birthday,
            language=data.language,
            consents=data.consents.model_dump(),
            enrolled_at=now,
            enrolment_channel=data.channel,
            updated_at=now,
        )
    )
    open_member_accounts(conn, program_id=program.id, member_id=member_id)
    if program.enrolment == "invitation":
        from palier.memberships.service import use_invitation

        use_invitation(
            conn=conn, clock=clock, program=program, code=data.invitation_code, member_id=member_id, purpose="enrol"
        )
    for field, normalised in wanted:
        _insert_identity(conn, program.id, member_id, normalised, now, field=field)
    if program.welcome_points:
        booking = ledger.Booking(
            program_id=program.id,
            member_id=member_id,
            kind="welcome",
            reason=f"Welcome to {program.name}",
            reason_code="welcome",
            now=now,
            effective_at=now,
        )
        ledger.earn(
            conn,
            booking,
            amount=program.welcome_points,
            source="welcome",
            label="Welcome bonus",
            matures_at=None,
            expires_at=expiry_for(program, now),
        )
    from palier.notify.outbox import tell_points
    from palier.rules.gifts import on_enrolment  # here: rules and tiers build on members
    from palier.tiers.service import on_enrolment as place_in_tier

    # the welcome mail first, then what the rules give for joining (points_earned) and the first tier
    joined = {"channel": data.channel, "welcome_points": program.welcome_points}
    tell_points(conn, program.id, "member_enrolled", member_id, joined, now)
    place_in_tier(conn=conn, clock=clock, program=program, member_id=member_id)
    on_enrolment(conn=conn, clock=clock, program=program, member_id=member_id, channel=data.channel)
    record_audit(
        conn=conn,
        clock=clock,
        program_id=program.id,
        actor=actor,
        action="member.enrolled",
        subject_id=member_id,
        # the proof of when each consent was given, and by whom (later changes: member.updated)
        details={"consents": given} if (given := {k: v for k, v in data.consents.model_dump().items() if v}) else None,
    )
    for field, normalised in wanted:
        if normalised.kind == "payment_card":
            _claim(conn, clock, program, member_id, normalised, field=field)
    return get_member(conn=conn, program_id=program.id, member_id=member_id)


def expiry_for(program: Program, earned_at: datetime) -> datetime | None:
    if program.points_lifetime_months is None:
        return None
    return add_months(earned_at, program.points_lifetime_months)


# Built once, as the statements of the other request paths: building one costs about as much as running it.
_member = select(members).where(members.c.id == bindparam("member_id"), members.c.program_id == bindparam("program_id"))
_identities_of = select(identities).where(identities.c.member_id == bindparam("member_id")).order_by(identities.c.id)
_member_known = select(members.c.id).where(
    members.c.id == bindparam("member_id"), members.c.program_id == bindparam("program_id")
)
_member_language = select(members.c.language).where(members.c.id == bindparam("member_id"))
_identity_owner = select(identities.c.member_id).where(
    identities.c.program_id == bindparam("program_id"),
    identities.c.kind == bindparam("kind"),
    identities.c.value == bindparam("value"),
)


def get_member(*, conn: Connection, program_id: str, member_id: str) -> Member:
    row = conn.execute(_member, {"member_id": member_id, "program_id": program_id}).mappings().first()
    if row is None:
        raise NotFound("member_not_found", f"No member {member_id} in this program.", field="member_id")
    rows = conn.execute(_identities_of, {"member_id": member_id}).mappings()
    found = [
        Identity(
            id=r["id"],
            kind=r["kind"],
            value=ident.display(r["kind"], r["value"], r["last4"], r["brand"]),
            created_at=utc(r["created_at"]),
        )
        for r in rows
    ]
    data: dict[str, Any] = dict(row)
    data.pop("program_id")
    data.pop("updated_at")
    data["enrolled_at"] = utc(data["enrolled_at"])
    data["consents"] = Consents.model_validate(data["consents"])
    return Member(identities=found, **data)


# a member's status, and what an event about them says (outbox): how to write to them and, for a command that
# tells their points, their balances before it
_member_status = select(members.c.status, members.c.merged_into_id, members.c.email, members.c.language).where(
    members.c.id == bindparam("member_id"), members.c.program_id == bindparam("program_id")
)
_member_status_and_points = _member_status.add_columns(*(member_balance(members.c.id, k) for k in TOLD_BALANCES))


def require_active(*, conn: Connection, program_id: str, member_id: str, with_points: bool = False) -> Any:
    """Refuse unless the member is active; its row: ``status``, ``email``, ``language`` and, ``with_points``, the
    balances a points event tells (``outbox.tell_points(member=…)``), read in the same statement."""
    status = status_of(conn=conn, program_id=program_id, member_id=member_id, with_points=with_points)
    refuse_unless_active(member_id, status, field="member_id")
    return status


def status_of(*, conn: Connection, program_id: str, member_id: str, with_points: bool = False) -> Any:
    """The member's row of :func:`require_active`, whatever its status; None for no such member."""
    query = _member_status_and_points if with_points else _member_status
    return conn.execute(query, {"member_id": member_id, "program_id": program_id}).first()


def holder_of(*, conn: Connection, program_id: str, member_id: str) -> str:
    """The member whose accounts hold ``member_id``'s points now: itself, or the member it was merged into,
    following later merges of that one (S into T, then T into U: U)."""
    seen = {member_id}
    while True:
        status = conn.execute(_member_status, {"member_id": member_id, "program_id": program_id}).first()
        into = status.merged_into_id if status is not None and status.status == "merged" else None
        if into is None or into in seen:
            return member_id
        member_id = into
        seen.add(into)


def merged_duplicates(conn: Connection, member_id: str) -> list[str]:
    """The members merged into this one, and those merged into them, and so on (A into B, then B into C: for C,
    B and A): one person's duplicate accounts."""
    found: list[str] = []
    frontier = [member_id]
    while frontier:
        frontier = list(conn.execute(select(members.c.id).where(members.c.merged_into_id.in_(frontier))).scalars())
        frontier = [m for m in frontier if m not in found and m != member_id]
        found += frontier
    return found


def refuse_unless_active(member_id: str, status: Any, *, field: str) -> None:
    """Raise unless ``status`` (a row with ``status`` and ``merged_into_id``, or None) is an active member's."""
    if status is None:
        raise NotFound("member_not_found", f"No member {member_id} in this program.", field=field)
    if status.status == "erased":
        raise Conflict("member_erased", f"Member {member_id} was erased at their request.", field=field)
    if status.status != "active":
        raise Conflict(
            "member_merged",
            f"Member {member_id} was merged into {status.merged_into_id}.",
            field=field,
            merged_into_id=status.merged_into_id,
        )


def update_member(
    *, conn: Connection, clock: Clock, program: Program, member_id: str, changes: MemberUpdate, actor: str
) -> Member:
    lock_members(conn, [member_id])  # then check: an erasure or a merge may have committed while we waited
    require_active(conn=conn, program_id=program.id, member_id=member_id)
    values = changes.model_dump(exclude_unset=True)
    now = clock.now()
    for kind in ("email", "phone"):
        if kind in values:
            # the profile's e-mail / phone is one identity among possibly several: replace that one only
            current = conn.execute(select(members.c[kind]).where(members.c.id == member_id)).scalar()
            new = _profile_identities(
                values[kind] if kind == "email" else None, values[kind] if kind == "phone" else None, program
            )
            if new and new[0][1].value == current:  # the same address, however typed: its identity stays as it is
                values[kind] = current
                continue
            if current is not None:
                conn.execute(
                    delete(identities).where(
                        identities.c.member_id == member_id, identities.c.kind == kind, identities.c.value == current
                    )
                )
            for field, normalised in new:
                _insert_identity(conn, program.id, member_id, normalised, now, field=field)
            # cleared: the oldest address still linked shows instead, as when the profile's one is unlinked
            values[kind] = new[0][1].value if new else _oldest_identity(conn, member_id, kind)
    details: dict[str, Any] = {}
    if changes.consents is not None:
        stored = Consents.model_validate(
            conn.execute(select(members.c.consents).where(members.c.id == member_id)).scalar_one()
        ).model_dump()
        sent = {k: v for k, v in changes.consents.model_dump(exclude_unset=True).items() if v is not None}
        values["consents"] = {**stored, **sent}
        # the proof of when a consent was given or withdrawn, and by whom: the audit entry names each change
        if changed := {name: given for name, given in sent.items() if stored[name] != given}:
            details["consents"] = changed
    if values:
        conn.execute(update(members).where(members.c.id == member_id).values(updated_at=now, **values))
        record_audit(
            conn=conn,
            clock=clock,
            program_id=program.id,
            actor=actor,
            action="member.updated",
            subject_id=member_id,
            details={"fields": sorted(values), **details},
        )
    return get_member(conn=conn, program_id=program.id, member_id=member_id)


def add_identity(
    *,
    conn: Connection,
    clock: Clock,
    program: Program,
    member_id: str,
    identity: IdentityIn,
    card_key: bytes,
    actor: str,
) -> Member:
    """Link another identity; linking a payment card credits the purchases it made while unclaimed."""
    lock_members(conn, [member_id])  # an erasure or a merge committing meanwhile is seen, not written over
    require_active(conn=conn, program_id=program.id, member_id=member_id)
    field, normalised = _normalise(identity, "value", program, card_key)
    owner = _owner(conn, program.id, normalised)
    if owner != member_id:
        _insert_identity(conn, program.id, member_id, normalised, clock.now(), field=field)
        if normalised.kind in ("email", "phone"):
            conn.execute(update(members).where(members.c.id == member_id).values({normalised.kind: normalised.value}))
        record_audit(
            conn=conn,
            clock=clock,
            program_id=program.id,
            actor=actor,
            action="identity.linked",
            subject_id=member_id,
            details={"kind": normalised.kind},
        )
        if normalised.kind == "payment_card":
            _claim(conn, clock, program, member_id, normalised, field=field)
    return get_member(conn=conn, program_id=program.id, member_id=member_id)


def remove_identity(
    *, conn: Connection, clock: Clock, program: Program, member_id: str, identity_id: str, actor: str
) -> Member:
    lock_members(conn, [member_id])
    require_active(conn=conn, program_id=program.id, member_id=member_id)
    row = conn.execute(
        select(identities.c.kind, identities.c.value).where(
            identities.c.id == identity_id, identities.c.member_id == member_id
        )
    ).first()
    if row is None:
        raise NotFound("identity_not_found", f"Member {member_id} has no identity {identity_id}.", field="identity_id")
    conn.execute(delete(identities).where(identities.c.id == identity_id))
    if row.kind in ("email", "phone"):
        shown = conn.execute(select(members.c[row.kind]).where(members.c.id == member_id)).scalar()
        if shown == row.value:
            _refresh_profile_contact(conn, member_id, row.kind)
    record_audit(
        conn=conn,
        clock=clock,
        program_id=program.id,
        actor=actor,
        action="identity.removed",
        subject_id=member_id,
        details={"kind": row.kind},
    )
    return get_member(conn=conn, program_id=program.id, member_id=member_id)


def find_member_id(
    *, conn: Connection, program: Program, kind: str, value: str, card_key: bytes, field: str = "value"
) -> str | None:
    """The member holding this identity, or None. Merged members are followed to the one that remains."""
    normalised = ident.normalise(kind, value, field=field, card_key=card_key, default_country=program.default_country)
    return _owner(conn, program.id, normalised)


def lookup(*, conn: Connection, program: Program, kind: str, value: str, card_key: bytes) -> Member:
    member_id = find_member_id(conn=conn, program=program, kind=kind, value=value, card_key=card_key)
    if member_id is None:
        raise NotFound("member_not_found", f"No member has this {kind.replace('_', ' ')}.", field="value")
    return get_member(conn=conn, program_id=program.id, member_id=member_id)


def merge(
    *, conn: Connection, clock: Clock, program: Program, source_id: str, target_id: str, actor: str
) -> MergeResult:
    """Merge two accounts of one person: ``source`` is closed, everything it had moves to ``target``."""
    if source_id == target_id:
        raise InvalidInput("merge_same_member", "A member cannot be merged into itself.", field="source_member_id")
    lock_members(conn, [source_id, target_id])  # then check: a merge may have committed while we waited
    for member_id, field in ((source_id, "source_member_id"), (target_id, "target_member_id")):
        try:
            require_active(conn=conn, program_id=program.id, member_id=member_id)
        except (NotFound, Conflict) as exc:
            exc.field = field
            raise
    now = clock.now()
    booking = ledger.Booking(
        program_id=program.id,
        member_id=target_id,
        kind="merge",
        reason="Points from a merged duplicate account",
        reason_code="merge",
        now=now,
        effective_at=now,
    )
    transaction_id, moved, lots_moved = ledger.move_member(conn, booking, source_id=source_id)
    debt_repaid = ledger.settle_debt(conn, booking)  # one account owed points the other could spend
    moved_identities = conn.execute(
        update(identities).where(identities.c.member_id == source_id).values(member_id=target_id)
    ).rowcount
    filled = _fill_profile(conn, source_id, target_id, now)
    from palier.activity.service import reassign_member
    from palier.rules.service import move_member as move_counters

    # campaign caps and spend counters add up, and the awards of the source's orders follow them
    counters_moved = move_counters(conn=conn, clock=clock, program=program, source_id=source_id, target_id=target_id)
    reassign_member(conn=conn, program_id=program.id, source_id=source_id, target_id=target_id)
    from palier.rewards.service import move_member as move_rewards

    credit_moved = move_rewards(conn, booking=booking, program=program, source_id=source_id)
    earlier = _keep_earlier_enrolment(conn, source_id, target_id, now)
    _move_status(conn, clock, program, source_id, target_id)
    conn.execute(
        update(members)
        .where(members.c.id == source_id)
        .values(status="merged", merged_into_id=target_id, updated_at=now)
    )
    merge_id = new_id("merge")
    details = {"moved": moved, "lots_moved": lots_moved, "identities_moved": moved_identities}
    if debt_repaid:
        details["debt_repaid"] = debt_repaid
    if credit_moved:
        details["store_credit_moved"] = credit_moved
    if counters_moved:
        details["counters_moved"] = counters_moved
    if filled:
        details["profile_filled"] = filled
    if earlier is not None:
        details["enrolled_at"] = earlier.isoformat()
    conn.execute(
        insert(merges).values(
            id=merge_id,
            program_id=program.id,
            source_member_id=source_id,
            target_member_id=target_id,
            transaction_id=transaction_id or "",
            actor=actor,
            created_at=now,
            details=details,
        )
    )
    record_audit(
        conn=conn,
        clock=clock,
        program_id=program.id,
        actor=actor,
        action="member.merged",
        subject_id=target_id,
        details={"source_member_id": source_id, **details},
    )
    _tell_merged(conn, program, source_id, target_id, moved, credit_moved, now)
    return MergeResult(
        merge_id=merge_id,
        source_member_id=source_id,
        target_member_id=target_id,
        transaction_id=transaction_id,
        moved=moved,
        lots_moved=lots_moved,
        identities_moved=moved_identities,
        debt_repaid=debt_repaid,
        store_credit_moved=credit_moved,
    )


def _tell_merged(
    conn: Connection,
    program: Program,
    source_id: str,
    target_id: str,
    moved: dict[str, int],
    credit_moved: int,
    now: datetime,
) -> None:
    """The merchant's CRM and mailer hear that ``source`` is closed into ``target`` (whose address and language
    are now the person's), with the points and store credit it brought and the points after it."""
    from palier.notify import outbox

    after = ledger.balances(conn, member_id=target_id)
    payload = outbox.contact(conn, target_id) | {
        "merged_member_id": source_id,
        "points_moved": sum(moved.get(kind, 0) for kind in ("available", "pending", "held")),
        "store_credit_moved": credit_moved,
        "available": after.get("available", 0),
        "pending_balance": after.get("pending", 0),
    }
    outbox.emit(conn, program_id=program.id, type_="member_merged", subject_id=target_id, payload=payload, now=now)


def _fill_profile(conn: Connection, source_id: str, target_id: str, now: datetime) -> list[str]:
    """What the target's profile leaves blank, the source's fills: names and birthday (the birthday gift comes on
    the person's day), and an e-mail or phone from the identities moved (mails go to it). Its own stay.
    Returns the fields filled."""
    columns = (members.c.first_name, members.c.last_name, members.c.birthday, members.c.email, members.c.phone)
    rows = conn.execute(select(members.c.id, *columns).where(members.c.id.in_((source_id, target_id)))).mappings()
    found = {row["id"]: row for row in rows}
    source, target = found[source_id], found[target_id]
    names = ("first_name", "last_name", "birthday")
    filled = {name: source[name] for name in names if target[name] is None and source[name] is not None}
    if filled:
        conn.execute(update(members).where(members.c.id == target_id).values({**filled, "updated_at": now}))
    for kind in ("email", "phone"):
        if target[kind] is None:
            _refresh_profile_contact(conn, target_id, kind)
    contacts = conn.execute(select(members.c.email, members.c.phone).where(members.c.id == target_id)).one()
    brought = [kind for kind, value in zip(("email", "phone"), contacts, strict=True) if target[kind] is None and value]
    return [*filled, *brought]


def _keep_earlier_enrolment(conn: Connection, source_id: str, target_id: str, now: datetime) -> datetime | None:
    """The person is a member since the earlier of the two enrolments (2019 and 2024 make a member since 2019),
    on the channel of that enrolment: anniversaries, tenure in segments, anniversary-year tier windows and the
    segments and rules that test `enrolment_channel` follow it. Returns the date taken from the source, or None
    when the target's is the earlier."""
    source, target = (enrolled_at(conn=conn, member_id=member_id) for member_id in (source_id, target_id))
    if source >= target:
        return None
    channel = conn.execute(select(members.c.enrolment_channel).where(members.c.id == source_id)).scalar_one()
    conn.execute(
        update(members)
        .where(members.c.id == target_id)
        .values(enrolled_at=source, enrolment_channel=channel, updated_at=now)
    )
    return source


def _move_status(conn: Connection, clock: Clock, program: Program, source_id: str, target_id: str) -> None:
    """Tier, memberships and segments of a merged member: the one that remains keeps the better of each, and
    its orders, now both accounts' (moved before this), may reach a higher tier at once, as a card's link does."""
    from palier.memberships.service import move_member as move_memberships
    from palier.segments.service import move_member as move_segments
    from palier.tiers.service import move_member as move_tier
    from palier.tiers.service import on_activity

    move_tier(conn, program=program, source_id=source_id, target_id=target_id, now=clock.now())
    on_activity(conn=conn, clock=clock, program=program, member_id=target_id)
    move_memberships(conn, source_id=source_id, target_id=target_id, now=clock.now())
    move_segments(conn, source_id=source_id, target_id=target_id, now=clock.now())


def balance(*, conn: Connection, clock: Clock, program: Program, member_id: str, next_rewards: bool = False) -> Balance:
    """Points by account, next expiry and maturity; with ``next_rewards``, also the rewards within reach.

    As of ``clock.now()``: points past their expiry are not shown, nor as available, even before the job
    expires them; points whose return window has closed are shown available (``ledger.catch_up.as_of``)."""
    require_known(conn=conn, program_id=program.id, member_id=member_id)
    stored = ledger.balances(conn, member_id=member_id)
    rows = conn.execute(_live_lots, {"program_id": program.id, "member_id": member_id})
    amounts, live = as_of(stored, [LiveLot(*row) for row in rows], clock.now())
    due = _soonest(program, live)
    expiry, maturity = due.get("active"), due.get("pending")
    return Balance(
        member_id=member_id,
        points_name=program.points_name,
        available=amounts.get("available", 0),
        pending=amounts.get("pending", 0),
        held=amounts.get("held", 0),
        debt=-amounts.get("debt", 0),
        next_expiry=Expiry(points=expiry[0], expires_at=expiry[1]) if expiry else None,
        next_maturity=Maturity(points=maturity[0], matures_at=maturity[1]) if maturity else None,
        next_rewards=_next_rewards(conn, clock, program, member_id) if next_rewards else [],
    )


def _next_rewards(conn: Connection, clock: Clock, program: Program, member_id: str) -> list[Any]:
    from palier.rewards.service import next_rewards

    return list(next_rewards(conn=conn, clock=clock, program=program, member_id=member_id))


def language_of(conn: Connection, member_id: str) -> str:
    """The member's language (``fr`` when unknown)."""
    return conn.execute(_member_language, {"member_id": member_id}).scalar() or "fr"


def enrolled_at(*, conn: Connection, member_id: str) -> datetime:
    """When the member joined (UTC)."""
    return utc(conn.execute(select(members.c.enrolled_at).where(members.c.id == member_id)).scalar_one())


def require_known(*, conn: Connection, program_id: str, member_id: str) -> None:
    found = conn.execute(_member_known, {"member_id": member_id, "program_id": program_id}).first()
    if found is None:
        raise NotFound("member_not_found", f"No member {member_id} in this program.", field="member_id")


def _soonest(program: Program, live: list[LiveLot]) -> dict[str, tuple[int, datetime]]:
    """For active lots the soonest expiry, for pending lots the soonest maturity, and the points due on that
    day in the program's time zone (lots earned moments apart expire moments apart: one day for a member).

    From the member's live lots, as of now (``ledger.catch_up.as_of``).
    """
    zone = ZoneInfo(program.timezone)
    found: dict[str, list[tuple[datetime, int]]] = {}
    for lot in live:
        when = lot.expires_at if lot.state == "active" else lot.matures_at
        if when is not None:
            found.setdefault(lot.state, []).append((utc(when), lot.remaining))
    due: dict[str, tuple[int, datetime]] = {}
    for state, items in found.items():
        soonest = min(when for when, _ in items)
        day = soonest.astimezone(zone).date()
        due[state] = (sum(points for when, points in items if when.astimezone(zone).date() == day), soonest)
    return due


# One indexed read of the member's live lots (program_id, member_id, state), in ``LiveLot``'s order.
_live_lots = select(lots.c.id, lots.c.state, lots.c.remaining, lots.c.matures_at, lots.c.expires_at).where(
    lots.c.program_id == bindparam("program_id"),
    lots.c.member_id == bindparam("member_id"),
    lots.c.state.in_(("active", "pending")),
    lots.c.remaining > 0,
)


# --- identities ---


def _refresh_profile_contact(conn: Connection, member_id: str, kind: str) -> None:
    """The profile shows one of the member's identities of ``kind`` (the oldest left), or none."""
    remaining = _oldest_identity(conn, member_id, kind)
    conn.execute(update(members).where(members.c.id == member_id).values({kind: remaining}))


def _oldest_identity(conn: Connection, member_id: str, kind: str) -> str | None:
    return conn.execute(
        select(identities.c.value)
        .where(identities.c.member_id == member_id, identities.c.kind == kind)
        .order_by(identities.c.id)
        .limit(1)
    ).scalar()


def _profile_identities(email: str | None, phone: str | None, program: Program) -> list[tuple[str, ident.Normalised]]:
    found = []
    if email:
        found.append(("email", ident.Normalised("email", ident.normalise_email(email, field="email"))))
    if phone:
        value = ident.normalise_phone(phone, field="phone", default_country=program.default_country)
        found.append(("phone", ident.Normalised("phone", value)))
    return found


def _normalise(identity: IdentityIn, field: str, program: Program, card_key: bytes) -> tuple[str, ident.Normalised]:
    return field, ident.normalise(
        identity.kind, identity.value, field=field, card_key=card_key, default_country=program.default_country
    )


def _only(wanted: list[tuple[str, ident.Normalised]], kind: str) -> str | None:
    return next((n.value for _, n in wanted if n.kind == kind), None)


def owner_of(*, conn: Connection, program_id: str, normalised: ident.Normalised) -> str | None:
    """The member holding this (normalised) identity, or None."""
    return _owner(conn, program_id, normalised)


def is_erased(*, conn: Connection, member_id: str) -> bool:
    return conn.execute(select(members.c.status).where(members.c.id == member_id)).scalar() == "erased"


def _owner(conn: Connection, program_id: str, normalised: ident.Normalised) -> str | None:
    params = {"program_id": program_id, "kind": normalised.kind, "value": normalised.value}
    return conn.execute(_identity_owner, params).scalar()


def _lock_card_claim(conn: Connection, program_id: str, normalised: ident.Normalised) -> None:
    """Linking a payment card and a purchase paid with it take turns (see activity.service)."""
    if normalised.kind == "payment_card":
        lock_key(conn, ident.card_claim_key(program_id, normalised.value))


def _insert_identity(
    conn: Connection,
    program_id: str,
    member_id: str,
    normalised: ident.Normalised,
    now: datetime,
    *,
    field: str,
) -> None:
    _lock_card_claim(conn, program_id, normalised)
    owner = _owner(conn, program_id, normalised)
    if owner is not None:
        if owner == member_id:
            return
        raise Conflict(
            "identity_taken",
            f"This {normalised.kind.replace('_', ' ')} already belongs to another member.",
            field=field,
        )
    try:
        with conn.begin_nested():
            conn.execute(
                insert(identities).values(
                    id=new_id("identity"),
                    program_id=program_id,
                    member_id=member_id,
                    kind=normalised.kind,
                    value=normalised.value,
                    last4=normalised.last4,
                    brand=normalised.brand,
                    created_at=now,
                )
            )
    except IntegrityError:
        raise Conflict(
            "identity_taken",
            f"This {normalised.kind.replace('_', ' ')} already belongs to another member.",
            field=field,
        ) from None


def _claim(
    conn: Connection, clock: Clock, program: Program, member_id: str, card: ident.Normalised, *, field: str
) -> None:
    from palier.activity.claims import claim_unclaimed
    from palier.tiers.service import on_activity

    try:
        claimed = claim_unclaimed(
            conn=conn, clock=clock, program=program, member_id=member_id, kind=card.kind, value=card.value
        )
    except PalierError as exc:  # an order the card paid that cannot be credited: the card is what was sent
        exc.field = field
        raise
    if claimed:
        on_activity(conn=conn, clock=clock, program=program, member_id=member_id)  # the orders now count for a tier


def _is_history_cursor(conn: Connection, *, program_id: str, member_id: str, cursor: str) -> bool:
    if not is_id(cursor, "txn"):
        return False
    found = conn.execute(
        select(postings.c.transaction_id)
        .where(postings.c.transaction_id == cursor, postings.c.program_id == program_id)
        .where(postings.c.member_id == member_id)
        .limit(1)
    ).first()
    return found is not None


def history(
    *, conn: Connection, program: Program, member_id: str, cursor: str | None, limit: int, strict: bool = True
) -> HistoryPage:
    """The member's history, newest first; every line says why in words the member understands.

    A cursor not from this member's history (another member's transaction would page through this one's from
    the wrong place, in silence) is refused; or, not ``strict`` (a page's "older" link tampered with), ignored."""
    require_known(conn=conn, program_id=program.id, member_id=member_id)
    if cursor is not None and not _is_history_cursor(conn, program_id=program.id, member_id=member_id, cursor=cursor):
        if not strict:
            cursor = None
        else:
            raise InvalidInput("invalid_cursor", "This cursor was not issued by this member's history.", field="cursor")
    lines, next_cursor = member_history(conn, program_id=program.id, member_id=member_id, before=cursor, limit=limit)
    return HistoryPage(items=[HistoryLine(**line) for line in lines], next_cursor=next_cursor)
