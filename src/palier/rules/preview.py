"""What a cart would earn, one line per rule, without writing anything (product page, cart, checkout)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection

from palier.activity.models import AwardLine, Line, MemberId, Money, check_order_total, check_points_earned
from palier.clock import Clock, Moment, in_zone
from palier.members import service as members
from palier.programs.models import Program
from palier.rewards import service as rewards
from palier.rules import limits
from palier.rules.engine import Award, total_points
from palier.rules.models import Channel
from palier.rules.service import award_lines, member_context, purchase_snapshot, rules_or_default, status_bonus
from palier.tiers.status import standing


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    member_id: MemberId | None = Field(default=None, description="to apply their tier, first purchase, caps…")
    channel: Channel = "web"
    store_id: Annotated[str, Field(max_length=64)] | None = None
    lines: list[Line] = Field(min_length=1, max_length=500)
    shipping: Money = 0
    tax: Money = 0
    at: Moment | None = Field(default=None, description="a dry run at this time (default: now)")
    language: Literal["en", "fr"] = "en"

    @model_validator(mode="after")
    def _not_too_large(self) -> PreviewIn:
        check_order_total(self.lines, self.shipping, self.tax)
        return self


class Preview(BaseModel):
    at: datetime
    version: int = Field(description="the version of the rules in force at that time (0: the base rate)")
    points: int
    lines: list[AwardLine]


def preview(*, conn: Connection, clock: Clock, program: Program, data: PreviewIn) -> Preview:
    at = in_zone(data.at, program.timezone) if data.at is not None else clock.now()
    rules = rules_or_default(conn=conn, program=program, when=at)
    if data.member_id is not None:
        members.require_active(conn=conn, program_id=program.id, member_id=data.member_id)
    event = purchase_snapshot(
        program, lines=data.lines, channel=data.channel, store_id=data.store_id, shipping=data.shipping, tax=data.tax
    )
    member_standing = standing(conn, program=program, member_id=data.member_id, now=at)
    context = member_context(conn=conn, program=program, member_id=data.member_id, rules=rules, status=member_standing)
    found = limits.evaluate_within(
        conn=conn, program=program, rules=rules, event=event, member=context, at=at, member_id=data.member_id
    )
    found = limits.reserve(conn=conn, program=program, rules=rules, member_id=data.member_id, awards=found, take=False)
    found = [_as_granted(conn, program, award, at) for award in found]  # step vouchers the catalog still gives
    points, line_points = total_points(found, len(data.lines))
    bonus = status_bonus(program, member_standing, points, line_points)  # "Gold ×1.5: +18", as the purchase
    if bonus is not None:
        found = [*found, bonus]
        points += bonus.points
    check_points_earned(points)
    return Preview(at=at, version=rules.version, points=points, lines=award_lines(found, program, data.language))


def _as_granted(conn: Connection, program: Program, award: Award, at: datetime) -> Award:
    """A spend_step award with the coupons the purchase would give: none of a reward archived or out of its
    window, at most its stock left (the purchase counts the steps all the same)."""
    if award.kind != "coupon" or not award.coupons or award.reward_id is None:
        return award
    given = rewards.coupons_grantable(
        conn=conn, program_id=program.id, reward_id=award.reward_id, now=at, wanted=award.coupons
    )
    return award if given == award.coupons else replace(award, coupons=given)
