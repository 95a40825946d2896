"""What the rules may know of a member, read from the database only when a rule asks for it."""

from __future__ import annotations

from sqlalchemy import Connection, select

from palier.activity.tables import events
from palier.members.tables import members
from palier.rules import counters
from palier.rules.engine import CompiledRuleSet, MemberContext


def load(*, conn: Connection, program_id: str, member_id: str, rules: CompiledRuleSet) -> MemberContext:
    """``tier`` and ``segments`` stay empty until the tiers and segments work fills them in here."""
    first_purchase = False
    if rules.needs_first_purchase:
        earlier = conn.execute(
            select(events.c.id)
            .where(events.c.program_id == program_id, events.c.member_id == member_id, events.c.type == "purchase")
            .limit(1)
        ).first()
        first_purchase = earlier is None
    attributes: dict[str, str] = {}
    if rules.needs_attributes:
        row = conn.execute(
            select(members.c.language, members.c.enrolment_channel, members.c.birthday).where(
                members.c.id == member_id, members.c.program_id == program_id
            )
        ).first()
        if row is not None:
            attributes = {"language": str(row.language), "enrolment_channel": str(row.enrolment_channel)}
            if row.birthday is not None:
                attributes["birthday_month"] = str(row.birthday.month)
    found = counters.stored(conn, program_id=program_id, member_id=member_id, names=rules.counters)
    return MemberContext(first_purchase=first_purchase, attributes=attributes, counters=found)
