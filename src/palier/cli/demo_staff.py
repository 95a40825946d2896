"""What ``palier demo`` prints about the admin console, the dashboard and the till: where, and who signs in."""

from __future__ import annotations

from rich.markup import escape

from palier.cli.common import console
from palier.demo.staff import DemoStaff

LANDS_ON = {"admin": "/console/dashboard", "marketer": "/console/dashboard", "store_staff": "/till"}


def show_staff(users: list[DemoStaff], *, base: str) -> None:
    console.print(f"\n[bold]Admin console[/bold]   {base}/console", soft_wrap=True)
    console.print(f"[bold]KPI dashboard[/bold]   {base}/console/dashboard", soft_wrap=True)
    console.print(f"[bold]Till[/bold]            {base}/till", soft_wrap=True)
    # one plain line per user, never cut to the terminal's width: the e-mail and password are copied from here
    console.print("\n[bold]Staff sign-in[/bold] (new passwords on every run): role, e-mail, password, lands on")
    width = max(len(user.email) for user in users) if users else 0
    for user in users:
        line = f"  {user.role:<12} {user.email:<{width}}  {user.password}  {LANDS_ON[user.role]}"
        console.print(escape(line), soft_wrap=True)
