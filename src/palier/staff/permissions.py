"""What each staff role may do: one table, read by the console, the till and the CLI.

admin does everything; a marketer shapes the program (rules, rewards, tiers, VIP plans, segments) and reads members
and the dashboard; store staff work the till: find or enrol a member, use a coupon, pay with points, record
a sale, a VIP fee, or a refund (of a sale, or of a VIP fee, as a ``pos`` key may), no settings.
Everyone may change their own password.
"""

from __future__ import annotations

from typing import Final, Literal

Role = Literal["admin", "marketer", "store_staff"]
ROLES: Final[tuple[Role, ...]] = ("admin", "marketer", "store_staff")

Permission = Literal[
    "settings.edit",
    "staff.manage",
    "keys.manage",
    "rules.edit",
    "rewards.edit",
    "tiers.edit",
    "plans.edit",
    "segments.view",
    "segments.edit",
    "dashboard.view",
    "members.view",
    "members.adjust",
    "members.merge",
    "members.privacy",  # export a member's data, erase a member at their request (GDPR): admins
    "members.lookup",
    "coupons.lookup",
    "coupons.use",
    "points.pay",
    "sales.record",
    "memberships.refund",  # record a VIP fee given back, as POST /v1/memberships/payments/{id}/refund (pos)
    "till.use",
    "members.enrol",
    "account.password",
]

_ALL: Final[frozenset[Permission]] = frozenset(Permission.__args__)  # type: ignore[attr-defined]

PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    "admin": _ALL,
    "marketer": frozenset(
        {
            "rules.edit",
            "rewards.edit",
            "tiers.edit",
            "plans.edit",
            "segments.view",
            "segments.edit",
            "dashboard.view",
            "members.view",
            "members.lookup",
            "coupons.lookup",
            "account.password",
        }
    ),
    "store_staff": frozenset(
        {
            "till.use",
            "members.lookup",
            "members.enrol",
            "coupons.lookup",
            "coupons.use",
            "points.pay",
            "sales.record",
            "memberships.refund",
            "account.password",
        }
    ),
}


def allows(role: str, permission: Permission) -> bool:
    """Whether ``role`` may do ``permission`` (an unknown role may do nothing)."""
    return permission in PERMISSIONS.get(role, frozenset())  # type: ignore[call-overload]
