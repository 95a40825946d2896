"""Factories built on the services: programs, members, purchases, returns and adjustments.

Every helper runs one command in its own ``db.write()`` (so a refusal rolls back, as in production)
and returns what the service returned. ``who`` is a :class:`Member`, a member id, or an identity as
``(kind, value)``.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event

from palier.activity import service as activity
from palier.activity.models import (
    AdjustmentIn,
    EventResult,
    Line,
    MemberRef,
    PurchaseIn,
    ReturnIn,
    ReturnLine,
    ReversalResult,
)
from palier.clock import FrozenClock
from palier.db import Database
from palier.jobs import sweeps
from palier.ledger.verify import Violation, verify
from palier.members import service as members
from palier.members.models import Balance, HistoryLine, IdentityIn, Member, MemberCreate, MergeResult
from palier.programs import service as programs
from palier.programs.models import Program, ProgramSettings

CARD_KEY = b"palier-test-card-key"
ACTOR = "test"
_serial = itertools.count(1)

Who = Member | str | tuple[str, str]


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_serial)}-{random.randrange(10**6)}"


def luhn_card(prefix: str = "4970", length: int = 16) -> str:
    """A fresh, Luhn-valid card number of ``length`` digits (random, so tests never share one)."""
    body = prefix + "".join(random.choice("0123456789") for _ in range(length - 1 - len(prefix)))
    for check in "0123456789":
        digits = body + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch)
            if i % 2 == 1:
                d = d * 2 - 9 if d > 4 else d * 2
            total += d
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


def spaced(card: str, separator: str = " ") -> str:
    """``4970123412341234`` -> ``4970 1234 1234 1234``, as printed on the card.

    Tests build the card numbers they need at run time: none is written in the repository, which
    ``tests/reliability/test_no_card_numbers.py`` checks."""
    return separator.join(card[i : i + 4] for i in range(0, len(card), 4))


# --- programs ---


def make_program(db: Database, clock: FrozenClock, **settings: Any) -> Program:
    settings.setdefault("name", unique("Program"))
    with db.write() as conn:
        return programs.create_program(conn=conn, clock=clock, settings=ProgramSettings(**settings))


def assert_ledger_sound(db: Database, program: Program) -> None:
    with db.read() as conn:
        found: list[Violation] = verify(conn, program_id=program.id)
    assert found == [], f"ledger of {program.id} is unsound: {found}"


# --- members ---


def enrol(
    db: Database,
    clock: FrozenClock,
    program: Program,
    *,
    identities: Sequence[tuple[str, str]] = (),
    **profile: Any,
) -> Member:
    data = MemberCreate(
        identities=[IdentityIn(kind=kind, value=value) for kind, value in identities],  # type: ignore[arg-type]
        **profile,
    )
    with db.write() as conn:
        return members.enrol(conn=conn, clock=clock, program=program, data=data, card_key=CARD_KEY, actor=ACTOR)


def add_identity(db: Database, clock: FrozenClock, program: Program, who: Member, kind: str, value: str) -> Member:
    with db.write() as conn:
        return members.add_identity(
            conn=conn,
            clock=clock,
            program=program,
            member_id=who.id,
            identity=IdentityIn(kind=kind, value=value),  # type: ignore[arg-type]
            card_key=CARD_KEY,
            actor=ACTOR,
        )


def lookup(db: Database, program: Program, kind: str, value: str) -> Member:
    with db.read() as conn:
        return members.lookup(conn=conn, program=program, kind=kind, value=value, card_key=CARD_KEY)


def get_member(db: Database, program: Program, member_id: str) -> Member:
    with db.read() as conn:
        return members.get_member(conn=conn, program_id=program.id, member_id=member_id)


def merge(db: Database, clock: FrozenClock, program: Program, source: Who, target: Who) -> MergeResult:
    with db.write() as conn:
        return members.merge(
            conn=conn,
            clock=clock,
            program=program,
            source_id=_id(source),
            target_id=_id(target),
            actor=ACTOR,
        )


def balance(db: Database, program: Program, who: Who, clock: FrozenClock | None = None) -> Balance:
    """The member's balance as shown at ``clock.now()``; without a clock, as the ledger holds it (what the
    jobs have matured and expired so far, nothing more)."""
    with db.read() as conn:
        return members.balance(conn=conn, clock=clock or _BEFORE_ALL, program=program, member_id=_id(who))


_BEFORE_ALL = FrozenClock(datetime(2000, 1, 1, tzinfo=UTC))  # no lot is due to mature or expire yet


def history(db: Database, program: Program, who: Who) -> list[HistoryLine]:
    """The member's history as they see it, oldest line first."""
    with db.read() as conn:
        page = members.history(conn=conn, program=program, member_id=_id(who), cursor=None, limit=200)
    assert page.next_cursor is None
    return list(reversed(page.items))


def mature(db: Database, clock: FrozenClock, program: Program) -> sweeps.SweepResult:
    """The maturity sweep, for this program only (other tests' programs are left alone)."""
    return sweeps.mature(db, clock, program_id=program.id)


def expire(db: Database, clock: FrozenClock, program: Program) -> sweeps.SweepResult:
    """The expiry sweep, for this program only."""
    return sweeps.expire(db, clock, program_id=program.id)


# --- activity ---


def line(sku: str, unit_price: int, quantity: int = 1, **extra: Any) -> Line:
    return Line(sku=sku, unit_price=unit_price, quantity=quantity, **extra)


def member_ref(who: Who) -> MemberRef:
    if isinstance(who, tuple):
        kind, value = who
        return MemberRef(kind=kind, value=value)  # type: ignore[arg-type]
    return MemberRef(member_id=_id(who))


def purchase_body(
    program: Program,
    who: Who,
    *,
    clock: FrozenClock,
    amount: int | None = None,
    lines: Sequence[Line] | None = None,
    order_id: str | None = None,
    occurred_at: datetime | None = None,
    currency: str | None = None,
    channel: str = "store",
    **extra: Any,
) -> PurchaseIn:
    if lines is None:
        lines = [line("SKU-1", amount if amount is not None else 1000)]
    return PurchaseIn(
        order_id=order_id or unique("order"),
        member=member_ref(who),
        channel=channel,  # type: ignore[arg-type]
        occurred_at=occurred_at or clock.now(),
        currency=currency or program.currency,
        lines=list(lines),
        **extra,
    )


def send_purchase(db: Database, clock: FrozenClock, program: Program, body: PurchaseIn) -> tuple[EventResult, bool]:
    with db.write() as conn:
        return activity.record_purchase(conn=conn, clock=clock, program=program, purchase=body, card_key=CARD_KEY)


def purchase(db: Database, clock: FrozenClock, program: Program, who: Who, **kwargs: Any) -> EventResult:
    result, replayed = send_purchase(db, clock, program, purchase_body(program, who, clock=clock, **kwargs))
    assert not replayed
    return result


def return_body(
    order_id: str,
    *,
    clock: FrozenClock,
    lines: Sequence[tuple[str, int]] | Sequence[tuple[str, int, int]] | None = None,
    amount: int | None = None,
    shipping: int | None = None,
    return_id: str | None = None,
    occurred_at: datetime | None = None,
) -> ReturnIn:
    """``lines``: (sku, quantity) or (sku, quantity, position of the order's line)."""
    return ReturnIn(
        return_id=return_id or unique("return"),
        order_id=order_id,
        occurred_at=occurred_at or clock.now(),
        lines=[ReturnLine(sku=x[0], quantity=x[1], line=x[2] if len(x) > 2 else None) for x in lines]
        if lines is not None
        else None,
        amount=amount,
        shipping=shipping,
    )


def send_return(db: Database, clock: FrozenClock, program: Program, body: ReturnIn) -> tuple[EventResult, bool]:
    with db.write() as conn:
        return activity.record_return(conn=conn, clock=clock, program=program, ret=body)


def return_(db: Database, clock: FrozenClock, program: Program, order_id: str, **kwargs: Any) -> EventResult:
    result, replayed = send_return(db, clock, program, return_body(order_id, clock=clock, **kwargs))
    assert not replayed
    return result


def adjust(
    db: Database,
    clock: FrozenClock,
    program: Program,
    who: Who,
    points: int,
    reason: str = "Goodwill gesture",
    external_id: str | None = None,
) -> EventResult:
    body = AdjustmentIn(points=points, reason=reason, external_id=external_id)
    with db.write() as conn:
        result, _ = activity.adjust(
            conn=conn, clock=clock, program=program, member_id=_id(who), adjustment=body, actor=ACTOR
        )
    return result


def reverse(db: Database, clock: FrozenClock, program: Program, who: Who, transaction_id: str | None) -> ReversalResult:
    """Undo a manual adjustment (or welcome credit) by its reversal."""
    assert transaction_id is not None
    with db.write() as conn:
        return activity.reverse_transaction(
            conn=conn, clock=clock, program=program, member_id=_id(who), transaction_id=transaction_id,
            reason="Entered twice", actor=ACTOR,
        )  # fmt: skip


def _id(who: Who) -> str:
    if isinstance(who, Member):
        return who.id
    if isinstance(who, str):
        return who
    raise TypeError(f"need a member or member id, not {who!r}")


# --- rules ---


def apply_rules(db: Database, clock: FrozenClock, program: Program, document: dict[str, Any] | str) -> Program:
    """Apply a rules document (a dict, or YAML text) and return the program as it is now (new version)."""
    from palier.rules.document import parse_data, parse_text
    from palier.rules.service import apply_rules as apply

    parsed = parse_text(document) if isinstance(document, str) else parse_data(document)
    with db.write() as conn:
        apply(conn=conn, clock=clock, program_id=program.id, document=parsed, actor=ACTOR)
        return programs.get_program(conn=conn, program_id=program.id)


@contextmanager
def statements_run(db: Database) -> Iterator[list[str]]:
    """The SQL statements sent while the block runs, in order."""
    seen: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
