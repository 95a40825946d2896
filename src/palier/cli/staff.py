"""``palier staff``: the people who sign in to the console and the till (admin, marketer, store staff)."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape
from rich.table import Table

from palier.cli.common import console, new_app, open_database, table_columns
from palier.clock import SystemClock
from palier.errors import InvalidInput
from palier.programs.service import get_program
from palier.staff import service as staff
from palier.staff.models import StaffCreate
from palier.staff.permissions import PERMISSIONS, ROLES

app = new_app("Staff users of the console and the till: add, list, set a password or a role, deactivate.")
PROGRAM = typer.Option(..., "--program", help="The program's id (prg_…).")
EMAIL = typer.Argument(..., help="The staff user's e-mail (their sign-in name).")
STDIN = typer.Option(False, "--password-stdin", help="Read the password from standard input (for scripts).")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@app.command("add")
def add(
    email: str = EMAIL,
    program: str = PROGRAM,
    name: str = typer.Option(..., "--name", help="The name shown in the console."),
    role: str = typer.Option(..., "--role", help="admin | marketer | store_staff"),
    password_stdin: bool = STDIN,
) -> None:
    """Add a staff user (asks for the password twice, or reads it from stdin with --password-stdin)."""
    if role not in ROLES:
        raise InvalidInput("invalid_role", f"Unknown role {role!r}: use {', '.join(ROLES)}.", field="role")
    with open_database() as db, db.read() as conn:  # a mistyped program is said before the password is asked
        get_program(conn=conn, program_id=program)
    data = StaffCreate.model_validate(
        {"email": email, "display_name": name, "role": role, "password": _password(password_stdin)}
    )
    with open_database() as db, db.write() as conn:
        get_program(conn=conn, program_id=program)
        user = staff.create(conn=conn, clock=SystemClock(), program_id=program, data=data, actor="cli")
    console.print(f"Staff user {escape(user.email)} added as {user.role} ({user.id}).")


@app.command("list")
def list_(program: str = PROGRAM) -> None:
    """The program's staff users, their role, whether they can sign in, and when they last did."""
    with open_database() as db, db.read() as conn:
        get_program(conn=conn, program_id=program)
        users = staff.list_users(conn=conn, program_id=program)
    table = Table(title="Staff users", title_justify="left")
    table_columns(table, ("e-mail", "name", "role", "active", "last sign-in", "may"), whole=("e-mail",))
    for user in users:
        table.add_row(
            escape(user.email),
            escape(user.display_name),
            user.role,
            "yes" if user.active else "no",
            user.last_sign_in_at.strftime("%Y-%m-%d %H:%M UTC") if user.last_sign_in_at else "never",
            ", ".join(sorted(PERMISSIONS[user.role])) if user.role != "admin" else "everything",
        )
    console.print(table)
    if not users:
        console.print("No staff user yet: add one with `palier staff add EMAIL --program … --name … --role admin`.")


@app.command("passwd")
def passwd(email: str = EMAIL, program: str = PROGRAM, password_stdin: bool = STDIN) -> None:
    """Set a staff user's password (asks for it twice, or reads it from stdin with --password-stdin)."""
    with open_database() as db, db.read() as conn:  # an unknown user is said before the password is asked for
        staff.find(conn=conn, program_id=program, email=email)
    password = _password(password_stdin)
    with open_database() as db, db.write() as conn:
        user = staff.find(conn=conn, program_id=program, email=email)
        staff.change_password(conn=conn, clock=SystemClock(), staff_id=user.id, new_password=password, actor="cli")
    console.print(f"Password of {escape(user.email)} changed.")


@app.command("deactivate")
def deactivate(email: str = EMAIL, program: str = PROGRAM) -> None:
    """Stop a staff user from signing in (their sessions end at their next request)."""
    with open_database() as db, db.write() as conn:
        user = staff.find(conn=conn, program_id=program, email=email)
        staff.set_active(conn=conn, clock=SystemClock(), staff_id=user.id, active=False, actor="cli")
    console.print(f"{escape(user.email)} can no longer sign in.")


@app.command("reactivate")
def reactivate(email: str = EMAIL, program: str = PROGRAM) -> None:
    """Let a deactivated staff user sign in again (with their password as it was)."""
    with open_database() as db, db.write() as conn:
        user = staff.find(conn=conn, program_id=program, email=email)
        staff.set_active(conn=conn, clock=SystemClock(), staff_id=user.id, active=True, actor="cli")
    console.print(f"{escape(user.email)} can sign in again.")


@app.command("role")
def role(
    email: str = EMAIL,
    program: str = PROGRAM,
    to: str = typer.Option(..., "--role", help="admin | marketer | store_staff"),
) -> None:
    """Give a staff user another role (it applies at their next request; never demotes the last admin)."""
    if to not in ROLES:
        raise InvalidInput("invalid_role", f"Unknown role {to!r}: use {', '.join(ROLES)}.", field="role")
    with open_database() as db, db.write() as conn:
        user = staff.find(conn=conn, program_id=program, email=email)
        staff.set_role(conn=conn, clock=SystemClock(), staff_id=user.id, role=to, actor="cli")
    console.print(f"{escape(user.email)} is now {to}.")
