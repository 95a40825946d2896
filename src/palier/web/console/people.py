"""What the console and the till show about a member, read in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request
from sqlalchemy import Connection

from palier.clock import Clock
from palier.errors import PalierError
from palier.ledger import operations as ledger
from palier.members import service as members
from palier.members.models import Balance, HistoryLine, Member
from palier.memberships import service as memberships
from palier.memberships.models import Membership
from palier.programs.models import Program
from palier.rewards import service as rewards
from palier.rewards.models import CLOSED_STATES, Coupon, Localized
from palier.tiers import service as tiers
from palier.web.console.access import current
from palier.web.console.search import display_name
from palier.web.render import PageError


@dataclass(frozen=True)
class MemberView:
    member: Member
    name: str
    balance: Balance
    tier: Localized | None  # the member's tier, by its name
    coupons: list[Coupon]  # newest first
    history: list[HistoryLine]  # newest first
    store_credit: int  # the wallet, minor units
    memberships: list[Membership]  # VIP plans not lapsed: in trial, active or cancelled (to their period's end)
    older: str | None = None  # the cursor of the history lines before those shown, if there are any
    paged: bool = False  # the history shown starts before the latest line (an "older" link was followed)
    as_of: datetime | None = None  # when it was read

    @property
    def usable_coupons(self) -> list[Coupon]:
        """The coupons issued and not yet expired (the expiry job may not have closed one that just expired)."""
        return [
            c
            for c in self.coupons
            if c.state == "issued" and (c.expires_at is None or self.as_of is None or c.expires_at > self.as_of)
        ]


def shown_member(
    conn: Connection, request: Request, member_id: str, *, history: int = 50, before: str | None = None
) -> MemberView:
    """:func:`member_view` for a page of the signed-in staff user's program: an unknown member is a 404 page;
    ``before``, a cursor of an "older" link, shows the history lines before it (one not from a page: the latest)."""
    cursor = before if before and before.startswith("txn_") and len(before) <= 40 else None
    try:
        return member_view(
            conn=conn, clock=request.app.state.clock, program=current(request).program, member_id=member_id[:40],
            history=history, before=cursor,
        )  # fmt: skip
    except PalierError:
        raise PageError(404, "error.not_found") from None


def member_view(
    *, conn: Connection, clock: Clock, program: Program, member_id: str, history: int = 50, coupons: int = 50,
    before: str | None = None,
) -> MemberView:  # fmt: skip
    member = members.get_member(conn=conn, program_id=program.id, member_id=member_id)
    page = members.history(
        conn=conn, program=program, member_id=member_id, cursor=before, limit=history, strict=False
    )  # an "older" link tampered with: the latest
    found: list[Any] = page.items
    return MemberView(
        member=member,
        name=display_name(member),
        balance=members.balance(
            conn=conn, clock=clock, program=program, member_id=member_id
        ),  # no next rewards: not shown
        tier=_tier_name(conn, program, member_id),
        coupons=_coupons(conn, program, member_id, coupons),
        history=found,
        store_credit=ledger.balances_of(conn, member_id, "wallet"),
        memberships=[
            m
            for m in memberships.member_memberships(conn=conn, program_id=program.id, member_id=member_id)
            if m.state != "lapsed"
        ],
        older=page.next_cursor,
        paged=before is not None,
        as_of=clock.now(),
    )


def _coupons(conn: Connection, program: Program, member_id: str, closed: int) -> list[Coupon]:
    """Every coupon still to use (the till offers them however old), and the latest ``closed`` others."""
    found = rewards.member_coupons(conn=conn, program_id=program.id, member_id=member_id, states=["issued"])
    found += rewards.member_coupons(
        conn=conn, program_id=program.id, member_id=member_id, states=CLOSED_STATES, limit=closed
    )
    return sorted(found, key=lambda c: (c.issued_at, c.id), reverse=True)


def _tier_name(conn: Connection, program: Program, member_id: str) -> Localized | None:
    code = tiers.member_tier(conn, member_id=member_id)
    if code is None:
        return None
    policy = tiers.get_policy(conn, program_id=program.id)
    tier = policy.tier(code) if policy is not None else None
    return tier.name if tier is not None else Localized(fr=code, en=code)  # a tier since removed from the ladder
