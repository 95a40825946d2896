"""``palier coupons``: what the till needs: look a coupon up by its code, cancel it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Connection

from palier.cli.common import console, new_app, open_database
from palier.clock import SystemClock
from palier.errors import NotFound
from palier.members import service as members
from palier.programs.models import Program
from palier.programs.service import get_program
from palier.rewards import codes
from palier.rewards.models import Coupon
from palier.rewards.service import cancel_coupon, describe_reward, find_coupon, reward_of

app = new_app("Coupons at the till: look one up by its code, cancel it.")
CODE = typer.Argument(..., help="The code the member shows, with or without dashes (O and 0, I and 1 alike).")
PROGRAM = typer.Option(..., "--program", help="The program's id (prg_…).")


@app.command("show")
def show(code: str = CODE, program: str = PROGRAM) -> None:
    """Who the coupon belongs to, what it gives, whether it can still be used, until when, and for how many points."""
    clock = SystemClock()
    with open_database() as db, db.read() as conn:
        found = get_program(conn=conn, program_id=program)
        coupon = find_coupon(conn=conn, program_id=program, code=code)
        reward = reward_of(conn=conn, program_id=program, coupon=coupon)  # its terms as issued
        holder = _member_name(conn, found, coupon.member_id)
    local = _local(found)
    table = Table(title=f"Coupon {codes.display(coupon.code)}", title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    rows = {
        "member": f"{holder} ({coupon.member_id})",
        "reward": f"{coupon.title.en} / {coupon.title.fr} ({coupon.reward_id})",
        "gives": describe_reward(reward, found),  # its terms as issued, whatever the reward says now
        "minimum order": found.money(reward.min_order) if reward.min_order else "none",
        "channels": ", ".join(reward.channels) if reward.channels else "all",
        "state": _state(coupon, clock.now(), local),
        "issued": local(coupon.issued_at),
        "expires": local(coupon.expires_at) if coupon.expires_at else "never",
        "points": _points(coupon, found),
    }
    if coupon.state == "used" and coupon.order_id:
        where = f" at {coupon.store_id}" if coupon.store_id else ""
        discount = f", {found.money(coupon.discount)} off" if coupon.discount else ""
        rows["used on"] = f"order #{coupon.order_id} ({coupon.channel}{where}){discount}"
    for name, value in rows.items():
        table.add_row(name, escape(value) if name != "state" else value)
    console.print(table)


@app.command("cancel")
def cancel(code: str = CODE, program: str = PROGRAM) -> None:
    """Cancel an unused coupon: its points go back to the member (those from lots expired since expire)."""
    clock = SystemClock()
    with open_database() as db, db.write() as conn:
        found = get_program(conn=conn, program_id=program)
        before = find_coupon(conn=conn, program_id=program, code=code)
        shown = codes.display(before.code)
        if before.state == "cancelled":
            closed = _local(found)(before.closed_at) if before.closed_at else "earlier"
            console.print(f"Coupon {shown} was already cancelled ({closed}): nothing to do.")
            return
        available = members.balance(conn=conn, clock=clock, program=found, member_id=before.member_id).available
        coupon = cancel_coupon(conn=conn, clock=clock, program=found, code=code, actor="cli")
        now_available = members.balance(conn=conn, clock=clock, program=found, member_id=coupon.member_id).available
        holder = _member_name(conn, found, coupon.member_id)
    back = now_available - available
    lapsed = coupon.points - back
    console.print(f"Coupon {shown} ({escape(coupon.title.en)}) cancelled.")
    if coupon.points:
        console.print(
            f"{back:,} {found.points_name_in('en')} back to {escape(holder)} ({coupon.member_id}); "
            f"available now: {now_available:,}.",
            soft_wrap=True,
        )
    if lapsed:
        console.print(
            f"[yellow]{lapsed:,} {found.points_name_in('en')} came from lots that expired meanwhile: they expired."
        )


def _member_name(conn: Connection, program: Program, member_id: str) -> str:
    try:
        member = members.get_member(conn=conn, program_id=program.id, member_id=member_id)
    except NotFound:
        return "unknown member"
    name = " ".join(part for part in (member.first_name, member.last_name) if part)
    return name or member.email or "no name given"


def _local(program: Program) -> Callable[[datetime], str]:
    """Times as the till reads them: in the program's time zone."""
    zone = ZoneInfo(program.timezone)

    def shown(when: datetime) -> str:
        return f"{when.astimezone(zone):%Y-%m-%d %H:%M %Z}"

    return shown


def _state(coupon: Coupon, now: datetime, local: Callable[[datetime], str]) -> str:
    if coupon.state == "issued" and coupon.expires_at is not None and coupon.expires_at <= now:
        return "[red]past its expiry date: cannot be used[/red] (its points go back at the next jobs run)"
    if coupon.state == "issued":
        until = f" until {local(coupon.expires_at)}" if coupon.expires_at else ""
        return f"[green]issued: can be used{until}[/green]"
    closed = coupon.used_at if coupon.state == "used" else coupon.closed_at
    if coupon.state == "used" and coupon.kind == "store_credit":
        return "used: store credit put in the member's wallet" + (f" {local(closed)}" if closed else "")
    return f"[yellow]{coupon.state}[/yellow]" + (f" {local(closed)}" if closed else "")


def _points(coupon: Coupon, program: Program) -> str:
    if coupon.source == "grant":
        return "none: a gift"
    fate = {
        "issued": "held until the coupon is used",
        "used": "spent",
        "cancelled": "given back to the member",
        "expired": "given back to the member",
    }[coupon.state]
    return f"{coupon.points:,} {program.points_name_in('en')} ({fate})"
