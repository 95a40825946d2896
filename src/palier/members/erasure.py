"""Erasing a member at their request (GDPR right to erasure), in one transaction under the member's lock.

What goes: the profile (names, e-mail, phone, birthday, consents), every identity (so the same e-mail or card
can join again as a new member), portal sign-ins and sessions, segment memberships, expiry warnings, outbox
events not yet delivered (never sent now: marked done, and scrubbed like the rest), and every copy of the
member's e-mail, phone, names, card numbers or card HMACs in stored purchase bodies, stored idempotent responses,
outbox payloads, audit entries and the notes of invitations they used.

What stays: the ledger (amounts, ids, dates: the merchant's accounts need them; its rows are immutable), the
purchases and their lines, coupons, the tier row, memberships (lapsed), audit entries. None of it names the
person once the profile and identities are gone. Points leave through the ledger (``ledger.closing``),
store credit too when the caller agrees to forfeit it.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime
from typing import Any, get_args

from sqlalchemy import ColumnElement, Connection, Table, Text, bindparam, cast, delete, or_, select, update

from palier.clock import Clock
from palier.errors import Conflict
from palier.ledger import operations as ledger
from palier.ledger.accounts import member_account, money_asset
from palier.ledger.closing import close_points
from palier.ledger.locks import lock_members
from palier.ledger.post import Posting, write
from palier.members.identities import IdentityKind
from palier.members.models import ErasureResult
from palier.members.service import merged_duplicates, refuse_unless_active
from palier.members.tables import identities, members
from palier.programs.models import Program
from palier.programs.service import record_audit
from palier.programs.tables import audit_entries

ERASED = "[erased]"
IDENTITY_KINDS = frozenset(get_args(IdentityKind))
REASON = "Account erased at the member's request"
PROFILE_FIELDS = frozenset({"first_name", "last_name", "email", "phone", "birthday"})
EMPTY_CONSENTS = {"email_marketing": False, "sms_marketing": False, "push": False, "profiling": False}


def erase(
    *,
    conn: Connection,
    clock: Clock,
    program: Program,
    member_id: str,
    reason: str,
    forfeit_store_credit: bool,
    actor: str,
) -> ErasureResult:
    """Erase the member; the same request again answers the first result."""
    lock_members(conn, [member_id])
    status = conn.execute(
        select(members.c.status, members.c.merged_into_id).where(
            members.c.id == member_id, members.c.program_id == program.id
        )
    ).first()
    if status is not None and status.status == "erased":
        return _first_result(conn, program.id, member_id)
    refuse_unless_active(member_id, status, field="member_id")
    now = clock.now()
    booking = ledger.Booking(
        program_id=program.id,
        member_id=member_id,
        kind="erase",
        reason=REASON,
        reason_code="member_erased",
        now=now,
        effective_at=now,
    )
    credit = forfeit_credit(conn, booking, program, forfeit=forfeit_store_credit)
    coupons_cancelled = _cancel_coupons(conn, clock, program, member_id)
    closed = close_points(conn, booking)
    memberships_lapsed = _lapse_memberships(conn, member_id, now)
    identities_deleted, personal = _forget_person(conn, program.id, member_id, now)
    result = ErasureResult(
        member_id=member_id,
        status="erased",
        erased_at=now,
        transaction_id=closed.transaction_id,
        points_removed=closed.available + closed.pending,
        pending_points_removed=closed.pending,
        debt_repaid=closed.debt_repaid,
        debt_written_off=closed.debt_written_off,
        coupons_cancelled=coupons_cancelled,
        store_credit_forfeited=credit,
        memberships_lapsed=memberships_lapsed,
        identities_deleted=identities_deleted,
    )
    # asked to name no one, staff may all the same ("Asked by Camille MARTIN"): the why stays, not who
    _record(conn, clock, program, actor=actor, reason=_redacted(reason, personal), result=result)
    return result


def _redacted(text: str, personal: set[str]) -> str:
    """``text`` with every string naming the person replaced by ``[erased]``, whatever its case; a whole word only
    (a first name Ann leaves "Annual" alone)."""
    if not personal:
        return text
    pattern = "|".join(re.escape(p) for p in sorted(personal, key=len, reverse=True))
    return re.sub(rf"(?<!\w)(?:{pattern})(?!\w)", ERASED, text, flags=re.IGNORECASE)


def _forget_person(conn: Connection, program_id: str, member_id: str, now: datetime) -> tuple[int, set[str]]:
    """Profile, identities and every trace of them; returns how many identities were deleted and the strings that
    named the person."""
    # the duplicate accounts merged into this one are the same person: their profiles go too (they stay merged)
    people = [member_id, *merged_duplicates(conn, member_id)]
    personal, identifiers = _personal_strings(conn, people)
    deleted = conn.execute(delete(identities).where(identities.c.member_id == member_id)).rowcount
    _clear_profile(conn, people, now)
    conn.execute(update(members).where(members.c.id == member_id).values(status="erased"))
    _forget_traces(conn, program_id, people, personal, identifiers, now)
    return int(deleted), personal


def _record(
    conn: Connection, clock: Clock, program: Program, *, actor: str, reason: str, result: ErasureResult
) -> None:
    """The audit entry (the first result, answered again to a repeat) and the events for the merchant's systems."""
    from palier.notify import outbox

    details = {"reason": reason, "result": result.model_dump(mode="json")}
    record_audit(
        conn=conn,
        clock=clock,
        program_id=program.id,
        actor=actor,
        action="member.erased",
        subject_id=result.member_id,
        details=details,
    )
    # the duplicate accounts merged into the member went too: the merchant's systems may know them by their own ids
    erased: list[tuple[str, str, str | None, dict[str, Any]]] = [
        (program.id, "member_erased", result.member_id, {"member_id": result.member_id})
    ]
    erased += [
        (program.id, "member_erased", duplicate, {"member_id": duplicate, "merged_into_id": result.member_id})
        for duplicate in merged_duplicates(conn, result.member_id)
    ]
    outbox.emit_many(conn, erased, now=clock.now())


def _first_result(conn: Connection, program_id: str, member_id: str) -> ErasureResult:
    details = conn.execute(
        select(audit_entries.c.details)
        .where(
            audit_entries.c.program_id == program_id,
            audit_entries.c.subject_id == member_id,
            audit_entries.c.action == "member.erased",
        )
        .order_by(audit_entries.c.id)
        .limit(1)
    ).scalar_one()
    return ErasureResult.model_validate(details["result"])


def forfeit_credit(conn: Connection, booking: ledger.Booking, program: Program, *, forfeit: bool) -> int:
    """Store credit left is money the member was owed: refused unless the caller forfeits it on their behalf."""
    credit = ledger.balances_of(conn, booking.member_id, "wallet")
    if credit <= 0:
        return 0
    if not forfeit:
        raise Conflict(
            "store_credit_left",
            f"The member still has {program.money(credit)} of store credit: let them spend it or refund it first,"
            " or send forfeit_store_credit: true to erase them all the same.",
            field="forfeit_store_credit",
            amount=credit,
            currency=program.currency,
        )
    money = money_asset(program.currency, program.currency_exponent)
    m = booking.member_id
    entry = replace(booking, reason="Store credit forfeited: account erased at the member's request").entry(
        [
            Posting(member_account(m, "wallet"), -credit, member_id=m, asset=money),
            ledger.program_posting(booking.program_id, "credit_issued", credit, member_id=m, asset=money),
        ],
        extra={"store_credit_forfeited": credit},
    )
    write(conn, [entry])
    return credit


def _cancel_coupons(conn: Connection, clock: Clock, program: Program, member_id: str) -> int:
    """The member's unused coupons are cancelled: their held points come back, then leave with the rest."""
    from palier.rewards.service import cancel_issued

    return cancel_issued(conn=conn, clock=clock, program=program, member_id=member_id, actor="erasure")


def _lapse_memberships(conn: Connection, member_id: str, now: datetime) -> int:
    from palier.memberships.tables import memberships

    return int(
        conn.execute(
            update(memberships)
            .where(memberships.c.member_id == member_id, memberships.c.state != "lapsed")
            .values(state="lapsed", ended_at=now, updated_at=now)
        ).rowcount
    )


def _personal_strings(conn: Connection, people: list[str]) -> tuple[set[str], set[str]]:
    """Every string that names the person (profile fields, identity values with card HMACs, and the masked
    payment cards stored purchase bodies hold, "•••• 1234"), and of those the ones that are the person's alone
    (e-mail, phone, identity values): a record is theirs when it holds one of those or their id, never because
    it holds a first name or four digits another member may share."""
    rows = conn.execute(
        select(members.c.first_name, members.c.last_name, members.c.email, members.c.phone).where(
            members.c.id.in_(people)
        )
    )
    names: set[str] = set()
    identifiers: set[str] = set()
    for first_name, last_name, email, phone in rows:
        names |= {first_name, last_name}
        identifiers |= {email, phone}
    for kind, value, last4 in conn.execute(
        select(identities.c.kind, identities.c.value, identities.c.last4).where(identities.c.member_id.in_(people))
    ):
        identifiers.add(value)
        if kind == "payment_card" and last4:
            names.add(f"•••• {last4}")
    identifiers = {value for value in identifiers if value and len(value) >= 2}
    return identifiers | {value for value in names if value and len(value) >= 2}, identifiers


def _clear_profile(conn: Connection, people: list[str], now: datetime) -> None:
    conn.execute(
        update(members)
        .where(members.c.id.in_(people))
        .values(
            first_name=None,
            last_name=None,
            email=None,
            phone=None,
            birthday=None,
            consents=EMPTY_CONSENTS,
            updated_at=now,
        )
    )


def _forget_traces(
    conn: Connection, program_id: str, people: list[str], personal: set[str], identifiers: set[str], now: datetime
) -> None:
    from palier.activity.tables import events, idempotency_keys
    from palier.memberships.tables import invitations, membership_payments
    from palier.notify.tables import expiry_warnings, outbox_events
    from palier.portal.tables import portal_sign_ins
    from palier.segments.tables import segment_members, segments
    from palier.sessions.tables import web_sessions
    from palier.tiers.tables import member_tiers, tier_history

    conn.execute(delete(portal_sign_ins).where(portal_sign_ins.c.member_id.in_(people)))
    conn.execute(delete(web_sessions).where(web_sessions.c.kind == "member", web_sessions.c.subject_id.in_(people)))
    # A segment refresh or a tier requalification running now may be about to write about the member: wait for
    # it (its locks: the segments, the tier row), then its rows and events go below; any later run skips them.
    conn.execute(
        select(segments.c.id).where(segments.c.program_id == program_id).order_by(segments.c.id).with_for_update()
    )
    conn.execute(delete(segment_members).where(segment_members.c.member_id.in_(people)))
    conn.execute(delete(expiry_warnings).where(expiry_warnings.c.member_id.in_(people)))
    conn.execute(update(member_tiers).where(member_tiers.c.member_id.in_(people)).values(manual_reason=None))
    # the events about them not yet delivered are never sent, but stay (scrubbed below) as done: a mailer that
    # read them before can still acknowledge its page without a 404 for them
    conn.execute(
        update(outbox_events)
        .where(
            outbox_events.c.program_id == program_id,
            outbox_events.c.subject_id.in_(people),
            outbox_events.c.delivered_at.is_(None),
        )
        .values(delivered_at=now)
    )
    conn.execute(
        update(events)
        .where(events.c.program_id == program_id, events.c.member_id.in_(people), events.c.claim_kind.is_not(None))
        .values(claim_kind=None, claim_value=None)
    )
    _forget_action_references(conn, program_id, people)
    # the records about the person: by their ids and identifiers (SQLite keeps JSON \u-escaped); inside those,
    # every string naming them goes, names and masked cards included
    mentions = list(dict.fromkeys([*people, *identifiers, *(json.dumps(p)[1:-1] for p in identifiers)]))
    mine = events.c.member_id.in_(people)
    _scrub(conn, events, ("body", "result"), events.c.program_id == program_id, mentions, personal, also=mine)
    _scrub(conn, outbox_events, ("payload",), outbox_events.c.program_id == program_id, mentions, personal)
    _scrub(conn, idempotency_keys, ("response",), idempotency_keys.c.program_id == program_id, mentions, personal)
    scope = membership_payments.c.program_id == program_id
    _scrub(conn, membership_payments, ("result", "refund"), scope, mentions, personal)
    # what staff typed about the member (a manual tier's reason, an audited change) may name them too
    changes = tier_history.c.member_id.in_(people)
    _scrub(conn, tier_history, ("details",), changes, mentions, personal, also=changes)
    # the note of an invitation they used ("For Camille Martin"), or of one naming their e-mail
    invited = invitations.c.used_by.in_(people)
    _scrub(conn, invitations, ("note",), invitations.c.program_id == program_id, mentions, personal, also=invited)
    audited = audit_entries.c.program_id == program_id
    _scrub(conn, audit_entries, ("details",), audited, mentions, personal, also=audit_entries.c.subject_id.in_(people))


def _forget_action_references(conn: Connection, program_id: str, people: list[str]) -> None:
    """An action is stored once by ``<action>:<reference>``, and the reference may name the person (the social
    account they followed): it goes from the action (``<action>:[erased]:<event id>``, still unique, still of its
    type for the limits), from its stored result and from the stored answers that gave it (found by the event's
    id). A reference is not searched for elsewhere: "R-1" is no one's alone."""
    from palier.activity.tables import events, idempotency_keys

    done = conn.execute(
        select(events.c.id, events.c.external_id, events.c.body, events.c.result).where(
            events.c.program_id == program_id, events.c.member_id.in_(people), events.c.type == "action"
        )
    ).all()
    if not done:
        return
    forgotten = {"external_id": ERASED}
    conn.execute(
        update(events)
        .where(events.c.id == bindparam("key_id"))
        .values(external_id=bindparam("new_external_id"), body=bindparam("new_body"), result=bindparam("new_result")),
        [
            {
                "key_id": event_id,
                "new_external_id": f"{external_id.split(':', 1)[0]}:{ERASED}:{event_id}",
                "new_body": {**body, "reference": ERASED} if isinstance(body, dict) else body,
                "new_result": {**result, **forgotten} if isinstance(result, dict) else result,
            }
            for event_id, external_id, body, result in done
        ],
    )
    ids = {event_id for event_id, *_ in done}
    texts = cast(idempotency_keys.c.response, Text)
    answers = conn.execute(
        select(idempotency_keys.c.key, idempotency_keys.c.response).where(
            idempotency_keys.c.program_id == program_id, or_(*(texts.contains(i, autoescape=True) for i in ids))
        )
    ).all()
    rewritten = [
        {"key_key": key, "new_response": {**response, **forgotten}}
        for key, response in answers
        if isinstance(response, dict) and response.get("event_id") in ids
    ]
    if rewritten:
        conn.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.program_id == program_id, idempotency_keys.c.key == bindparam("key_key"))
            .values(response=bindparam("new_response")),
            rewritten,
        )


def _scrub(
    conn: Connection,
    table: Table,
    names: tuple[str, ...],
    scope: ColumnElement[bool],
    mentions: list[str],
    personal: set[str],
    *,
    also: ColumnElement[bool] | None = None,
) -> None:
    """Replace every string naming the member in the JSON columns ``names`` of the rows in ``scope`` that
    mention the member (their id or a personal string, found by a text search of the stored JSON) or match
    ``also``."""
    if not personal:
        return
    keys = list(table.primary_key.columns)
    texts = [cast(table.c[name], Text) for name in names]
    # whatever the case ("CAMILLE@EXAMPLE.FR" in a note, "MARTIN" in a reason): SQLite's LIKE ignores it, not
    # PostgreSQL's
    found = or_(*(text.icontains(mention, autoescape=True) for text in texts for mention in mentions))
    if also is not None:
        found = or_(found, also)
    personal = {p.casefold() for p in personal}
    # the rows rewritten, by the columns that change (only those are written: a NULL left alone stays SQL NULL)
    rewritten: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in conn.execute(select(*keys, *(table.c[name] for name in names)).where(scope, found)).all():
        stored = dict(zip(names, row[len(keys) :], strict=True))
        changed = {name: _scrubbed(value, personal) for name, value in stored.items()}
        changed = {name: value for name, value in changed.items() if value != stored[name]}
        if changed:
            rewritten.setdefault(tuple(changed), []).append(
                {f"key_{n}": value for n, value in enumerate(row[: len(keys)])}
                | {f"new_{name}": value for name, value in changed.items()}
            )
    where = [key == bindparam(f"key_{n}") for n, key in enumerate(keys)]
    for columns, rows in rewritten.items():  # one statement each (2,000 orders: not 2,000 round trips)
        conn.execute(update(table).where(*where).values({name: bindparam(f"new_{name}") for name in columns}), rows)


def _scrubbed(value: Any, personal: set[str]) -> Any:
    """``value`` with every string holding one of ``personal`` (casefolded) replaced, whatever its case."""
    if isinstance(value, str):
        folded = value.casefold()
        return ERASED if any(p in folded for p in personal) else value
    if isinstance(value, dict):
        if value.get("kind") in IDENTITY_KINDS and isinstance(value.get("value"), str):
            # an identity as sent (a purchase's member) or shown (a stored profile): its value, whatever its spelling
            value = {**value, "value": ERASED}
        # a profile as answered then (an enrolment's stored answer, a mail's payload): its fields, whatever they held
        # then (an e-mail or a name changed since is no longer on the profile, so not among ``personal``)
        return {
            k: ERASED if k in PROFILE_FIELDS and isinstance(v, str) else _scrubbed(v, personal)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrubbed(v, personal) for v in value]
    return value
